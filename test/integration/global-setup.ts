// Starts the AWS API emulator for the integration suite (filled in with the fetcher's tests).
export default async function setup(): Promise<void> {}
