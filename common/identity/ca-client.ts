// The node proxy's client of the control plane's certificate service (gRPC over TLS, port 15012).
// It authenticates with the node's bearer token and verifies the control plane's serving
// certificate against the mesh root. Used through the CertificateSource interface by the
// certificate manager.
import * as grpc from '@grpc/grpc-js';
import { CertificateServiceClient, CreateCertificateRequest } from '../../api/gen/nodemesh/ca/v1/ca';
import { bearerMetadata, staticCredential, tokenFileCredential, type CredentialSource } from '../control-client/credential';

/** What the certificate manager needs from a CA: sign this CSR for about this long. */
export interface CertificateSource {
  createCertificate(csrPem: string, ttlSeconds: number): Promise<IssuedChain>;
}

export interface IssuedChain {
  /** PEM, leaf first. */
  readonly certChainPem: readonly string[];
  /** PEM roots. */
  readonly trustBundlePem: readonly string[];
}

/** A refusal or failure from the certificate service, with the gRPC status it came with. */
export class CertificateRequestError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
    this.name = 'CertificateRequestError';
  }
}

export interface CaClientOptions {
  /** host:port of the control plane's TLS gRPC port, e.g. 10.199.0.1:15012. */
  readonly address: string;
  /** PEM root(s) that signed the control plane's serving certificate (the mesh root). */
  readonly rootPem: string;
  /** Where the bearer token comes from, read at every request (so a rotated token is picked up). */
  readonly credential?: CredentialSource;
  /** Shorthands for `credential`: the node token itself, or the file that holds it. */
  readonly token?: string;
  readonly tokenFile?: string;
  /** Name to verify the server certificate against when `address` is not the name in it. */
  readonly serverName?: string;
  /** Per-request deadline (default 10 s). */
  readonly timeoutMs?: number;
}

export class CaClient implements CertificateSource {
  private readonly client: CertificateServiceClient;
  private readonly credential: CredentialSource;

  constructor(private readonly options: CaClientOptions) {
    if (options.credential) this.credential = options.credential;
    else if (options.token) this.credential = staticCredential(options.token, 'the node token');
    else if (options.tokenFile) this.credential = tokenFileCredential(options.tokenFile);
    else throw new Error('the CA client needs the node token (or the file that holds it)');
    const channelOptions: grpc.ChannelOptions = options.serverName
      ? { 'grpc.ssl_target_name_override': options.serverName, 'grpc.default_authority': options.serverName }
      : {};
    this.client = new CertificateServiceClient(options.address, grpc.credentials.createSsl(Buffer.from(options.rootPem)), channelOptions);
  }

  private token(): string {
    try {
      return this.credential.token();
    } catch (err) {
      throw new CertificateRequestError(grpc.status.UNAUTHENTICATED, (err as Error).message);
    }
  }

  createCertificate(csrPem: string, ttlSeconds: number): Promise<IssuedChain> {
    const metadata = bearerMetadata(this.token());
    const deadline = new Date(Date.now() + (this.options.timeoutMs ?? 10_000));
    return new Promise((resolve, reject) => {
      this.client.createCertificate(CreateCertificateRequest.fromPartial({ csr: csrPem, ttlSeconds }), metadata, { deadline }, (err, res) => {
        if (err) {
          reject(
            new CertificateRequestError(
              err.code,
              `the certificate service at ${this.options.address} answered ${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`,
            ),
          );
        } else {
          resolve({ certChainPem: res.certChain, trustBundlePem: res.trustBundle });
        }
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
