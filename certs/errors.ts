// Errors of the certificate code: a stable code to branch on, a message for people.

export type CertsErrorCode =
  | 'CERTS_INVALID_REQUEST' // generateCertificates was asked for something it cannot or must not make
  | 'CERTS_INVALID_CA' // the CA handed in is not a usable CA certificate + matching key
  | 'CERTS_USAGE' // bad command-line flags or environment
  | 'CERTS_IO' // reading or writing certificate files failed
  | 'CERTS_KUBERNETES'; // the Kubernetes API refused or failed a request we cannot work around

export class CertsError extends Error {
  readonly code: CertsErrorCode;
  constructor(code: CertsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CertsError';
    this.code = code;
  }
}
