// Keeps the xDS cache's workload API types in step with the config store: translate the current
// snapshot, then re-translate whenever the store's watch reports a write (bursts coalesced into
// one translation), and hand the cache the full set — the cache works out what changed.
import { Address, Authorization, PeerAuthentication } from '../../api/gen/nodemesh/workload/v1/workload';
import type { Logger } from '../../common/log';
import type { SharedCache } from '../xds/cache';
import { typeUrlOf, xdsResource, type XdsResource } from '../xds/resource';
import { NewWarnings, StoreFollower } from '../store/follow';
import type { ConfigStore } from '../store/store';
import { WorkloadApiTranslator, type TranslateOptions, type WorkloadApiState } from './translate';

export const ADDRESS_TYPE_URL = typeUrlOf(Address.$type);
export const AUTHORIZATION_TYPE_URL = typeUrlOf(Authorization.$type);
export const PEER_AUTHENTICATION_TYPE_URL = typeUrlOf(PeerAuthentication.$type);
export const WORKLOAD_API_TYPE_URLS: readonly string[] = [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, PEER_AUTHENTICATION_TYPE_URL];

export interface EncodedWorkloadApi {
  readonly addresses: Map<string, XdsResource>;
  readonly authorizations: Map<string, XdsResource>;
  readonly peerAuthentications: Map<string, XdsResource>;
  /** The messages the resources were encoded from (to skip re-encoding the same objects). */
  readonly messages: {
    readonly addresses: ReadonlyMap<string, Address>;
    readonly authorizations: ReadonlyMap<string, Authorization>;
    readonly peerAuthentications: ReadonlyMap<string, PeerAuthentication>;
  };
}

/**
 * Encode translated messages as xDS resources. With `previous`, a message that is the very same
 * object as last time is not encoded again, and a resource whose bytes did not change is reused
 * as is (no re-hash, and its encoded response record stays cached).
 */
export function encodeWorkloadApi(state: WorkloadApiState, previous?: EncodedWorkloadApi): EncodedWorkloadApi {
  const encode = <M>(
    typeUrl: string,
    messages: ReadonlyMap<string, M>,
    codec: { encode(m: M): { finish(): Uint8Array } },
    before: ReadonlyMap<string, XdsResource> | undefined,
    beforeMessages: ReadonlyMap<string, M> | undefined,
  ): Map<string, XdsResource> => {
    const out = new Map<string, XdsResource>();
    for (const [name, message] of messages) {
      const same = beforeMessages?.get(name) === message ? before?.get(name) : undefined;
      if (same) {
        out.set(name, same);
        continue;
      }
      const bytes = codec.encode(message).finish();
      const old = before?.get(name);
      out.set(name, old && Buffer.compare(old.value, bytes) === 0 ? old : xdsResource(typeUrl, name, bytes));
    }
    return out;
  };
  return {
    addresses: encode(ADDRESS_TYPE_URL, state.addresses, Address, previous?.addresses, previous?.messages.addresses),
    authorizations: encode(AUTHORIZATION_TYPE_URL, state.authorizations, Authorization, previous?.authorizations, previous?.messages.authorizations),
    peerAuthentications: encode(
      PEER_AUTHENTICATION_TYPE_URL,
      state.peerAuthentications,
      PeerAuthentication,
      previous?.peerAuthentications,
      previous?.messages.peerAuthentications,
    ),
    messages: { addresses: state.addresses, authorizations: state.authorizations, peerAuthentications: state.peerAuthentications },
  };
}

export interface PublisherOptions {
  readonly logger: Logger;
  readonly translate?: TranslateOptions;
}

export interface TranslationReport {
  readonly revision: number;
  readonly millis: number;
  readonly addresses: number;
  readonly authorizations: number;
  readonly peerAuthentications: number;
  readonly warnings: readonly string[];
}

export class WorkloadApiPublisher {
  private current: EncodedWorkloadApi | undefined;
  private report: TranslationReport | undefined;
  private readonly translator: WorkloadApiTranslator;
  private readonly follower: StoreFollower;
  private readonly warnings: NewWarnings;

  constructor(
    private readonly store: ConfigStore,
    private readonly cache: SharedCache,
    private readonly options: PublisherOptions,
  ) {
    this.translator = new WorkloadApiTranslator(options.translate);
    this.follower = new StoreFollower(
      () => this.publish(),
      (err) => options.logger.error({ err }, 'workload API translation failed; node proxies keep the previous state'),
    );
    this.warnings = new NewWarnings(options.logger);
  }

  /** Publish the current state and follow the store from here on. */
  start(): void {
    this.follower.start(this.store);
  }

  stop(): void {
    this.follower.stop();
  }

  /** The last translation: when, how long, how much, and what was left out. */
  get lastTranslation(): TranslationReport | undefined {
    return this.report;
  }

  /** Translate the store's current snapshot into the cache; returns its revision. */
  publish(): number {
    const started = process.hrtime.bigint();
    const snapshot = this.store.snapshot();
    const state = this.translator.translate(snapshot);
    const encoded = encodeWorkloadApi(state, this.current);
    this.current = encoded;
    const version = String(snapshot.revision);
    const a = this.cache.replace(ADDRESS_TYPE_URL, encoded.addresses, version);
    const z = this.cache.replace(AUTHORIZATION_TYPE_URL, encoded.authorizations, version);
    const p = this.cache.replace(PEER_AUTHENTICATION_TYPE_URL, encoded.peerAuthentications, version);
    const millis = Number(process.hrtime.bigint() - started) / 1e6;
    this.report = {
      revision: snapshot.revision,
      millis,
      addresses: encoded.addresses.size,
      authorizations: encoded.authorizations.size,
      peerAuthentications: encoded.peerAuthentications.size,
      warnings: state.warnings,
    };
    this.warnings.log(state.warnings, snapshot.revision);
    this.options.logger.debug(
      {
        revision: snapshot.revision,
        millis: Math.round(millis * 10) / 10,
        changed: a.changed.length + z.changed.length + p.changed.length,
        removed: a.removed.length + z.removed.length + p.removed.length,
        reusedWorkloads: this.translator.reused,
      },
      'workload API translated',
    );
    return snapshot.revision;
  }
}
