{{/* Chart name, 63 characters at most (a label value). */}}
{{- define "asi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every resource name. */}}
{{- define "asi.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "asi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "asi.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "asi.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest pins it. Argument: dict image, root. */}}
{{- define "asi.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The MutatingWebhookConfiguration's name: sorts before EKS's pod-identity-webhook. */}}
{{- define "asi.configurationName" -}}
{{- $name := default (printf "0-%s" (include "asi.fullname" .)) .Values.webhook.configurationName -}}
{{- if not (lt $name "pod-identity-webhook") -}}
{{- fail (printf "webhook.configurationName %q must sort before \"pod-identity-webhook\" (the API server calls mutating webhooks in name order, and EKS's must see our init container): start it with a digit or a letter before p, e.g. \"0-%s\"" $name $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "asi.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "asi.fullname" .)) .Values.certificates.secretName -}}
{{- end -}}

{{/* A Service name is a DNS-1035 label: no dots (a release may be named my.app), and a letter
     first (a release may be named 1app). Other objects take the fullname as it is. */}}
{{- define "asi.serviceName" -}}
{{- $name := include "asi.fullname" . | replace "." "-" -}}
{{- if regexMatch "^[0-9]" $name -}}
{{- $name = printf "s-%s" $name -}}
{{- end -}}
{{- regexReplaceAll "-+$" ($name | trunc 63) "" -}}
{{- end -}}

{{- define "asi.serviceAccountName" -}}
{{- include "asi.fullname" . -}}
{{- end -}}

{{/* Fail unless matchConditions are on; then only pods that asked for secrets are affected. */}}
{{- define "asi.failurePolicy" -}}
{{- if .Values.webhook.failurePolicy -}}
{{- .Values.webhook.failurePolicy -}}
{{- else if .Values.webhook.matchConditions.enabled -}}
Fail
{{- else -}}
Ignore
{{- end -}}
{{- end -}}

{{- define "asi.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* self-managed certificates: `certs bootstrap` (init container) makes sure the TLS Secret holds
     a valid CA and serving certificate and the configuration's caBundle matches, then writes the
     pair to the shared in-memory directory the webhook serves from; `certs manage` (sidecar)
     repeats that pass to renew, repair a wiped caBundle and follow another replica's renewal.
     Argument: dict "root" . "command" bootstrap|manage, and for the write-through writer its own
     "secret", "service" and "configuration". */}}
{{- define "asi.certsContainer" -}}
{{- $ := .root -}}
- name: certs-{{ .command }}
  image: {{ include "asi.image" (dict "image" $.Values.image "root" $) | quote }}
  imagePullPolicy: {{ $.Values.image.pullPolicy }}
  args:
    - certs
    - {{ .command }}
    - --namespace={{ $.Release.Namespace }}
    - --secret={{ .secret | default (include "asi.tlsSecretName" $) }}
    - --service={{ .service | default (include "asi.serviceName" $) }}
    - --webhook-configuration={{ .configuration | default (include "asi.configurationName" $) }}
    - --validity-days={{ $.Values.certificates.selfManaged.validityDays }}
    - --ca-validity-days={{ $.Values.certificates.selfManaged.caValidityDays }}
    - --out=/etc/aws-secret-injector/tls
    - --log-level={{ $.Values.logLevel }}
  resources:
    requests:
      cpu: 10m
      memory: 48Mi
    limits:
      memory: 128Mi
  securityContext:
    {{- include "asi.containerSecurityContext" $ | nindent 4 }}
  volumeMounts:
    - name: tls
      mountPath: /etc/aws-secret-injector/tls
    - name: kube-api-access
      mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      readOnly: true
{{- end -}}

{{/* Where the apiserver reaches a webhook of ours. Argument: dict "root" . "path" /mutate|/templates.
     With webhook.url (which ends in /mutate), the other paths are beside it. */}}
{{- define "asi.clientConfig" -}}
{{- $ := .root -}}
{{- if $.Values.webhook.url -}}
url: {{ regexReplaceAll "/mutate$" $.Values.webhook.url .path | quote }}
{{- else -}}
service:
  name: {{ include "asi.serviceName" $ }}
  namespace: {{ $.Release.Namespace }}
  path: {{ .path }}
  port: 443
{{- end }}
{{- with $.Values.webhook.caBundle }}
caBundle: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The namespaces our webhooks (and the guard policy) see. */}}
{{- define "asi.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- range (uniq (append .Values.webhook.namespaceSelector.excludeNamespaces .Release.Namespace)) }}
      - {{ . | quote }}
      {{- end }}
  {{- with .Values.webhook.namespaceSelector.optOutLabel }}
  - key: {{ .key | quote }}
    operator: NotIn
    values: [{{ .value | quote }}]
  {{- end }}
  {{- with .Values.webhook.namespaceSelector.matchExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* A workload whose pod template (or own metadata, a misplaced annotation) carries a
     secrets.k8s.aws/ annotation; absent fields are not evaluation errors. */}}
{{- define "asi.templateCondition" -}}
(has(object.spec) && has(object.spec.template) && has(object.spec.template.metadata) && has(object.spec.template.metadata.annotations) && object.spec.template.metadata.annotations.exists(k, k.startsWith('secrets.k8s.aws/'))) || (has(object.spec) && has(object.spec.jobTemplate) && has(object.spec.jobTemplate.spec) && has(object.spec.jobTemplate.spec.template) && has(object.spec.jobTemplate.spec.template.metadata) && has(object.spec.jobTemplate.spec.template.metadata.annotations) && object.spec.jobTemplate.spec.template.metadata.annotations.exists(k, k.startsWith('secrets.k8s.aws/'))) || (has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('secrets.k8s.aws/')))
{{- end -}}

{{/* The guard policy and its binding (cluster-wide names). */}}
{{- define "asi.guardName" -}}
{{- printf "%s-guard" (include "asi.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The write-through writer's names: its Deployment, ServiceAccount and configuration share one. */}}
{{- define "asi.writerName" -}}
{{- printf "%s-write-through" (include "asi.fullname" . | trunc 49 | trimSuffix "-") -}}
{{- end -}}

{{- define "asi.writerServiceName" -}}
{{- printf "%s-write-through" (include "asi.serviceName" . | trunc 49 | trimSuffix "-") -}}
{{- end -}}

{{- define "asi.writerTlsSecretName" -}}
{{- if eq .Values.certificates.mode "provided" -}}
{{- include "asi.tlsSecretName" . -}}
{{- else -}}
{{- printf "%s-tls" (include "asi.writerName" .) -}}
{{- end -}}
{{- end -}}

{{/* The WRITE_THROUGH_* settings both processes read (the pods' webhook for fromSecret). */}}
{{- define "asi.writeThroughEnv" -}}
{{- with .Values.writeThrough -}}
{{- if .cluster }}
- name: WRITE_THROUGH_CLUSTER
  value: {{ .cluster | quote }}
- name: WRITE_THROUGH_PREFIX
  value: {{ .prefix | quote }}
{{- with .region }}
- name: WRITE_THROUGH_REGION
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Apart from the pods' webhook's selector, so neither Deployment, Service nor PDB takes the other's pods. */}}
{{- define "asi.writerSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-write-through" (include "asi.name" . | trunc 49 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: write-through
{{- end -}}
