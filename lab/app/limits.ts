// The sample client's bounds on its options (lab/app/client.ts), apart so that callers that build
// its command line (lab/mesh/traffic.ts) can keep within them without loading the client.
export const LIMITS = { connections: 100_000, concurrency: 1000, size: 1024 ** 3, totalTimeoutMs: 600_000 };
