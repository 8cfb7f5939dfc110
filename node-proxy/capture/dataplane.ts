// The kernel side of enrolment, as the enroller needs it: map entries per workload, one bpf_link
// per attach point (pinned), the inbound listener registration and the original-destination table.
// Implemented over the native addon in bpf-dataplane.ts.
import type { OriginalDestinations } from '../proxy/original-destination';
import type { CaptureEntries } from './entries';
import type { AttachPoint } from './pins';
import type { CaptureWorkload } from './workload';

export interface Dataplane {
  readonly originals: OriginalDestinations;
  /** The netns cookie of the netns at `netnsPath` (what the BPF programs key workloads by). */
  netnsCookie(netnsPath: string): bigint;
  /** Writes a workload's entries; removes those of `previous` that are no longer wanted. */
  writeEntries(cookie: bigint, entries: CaptureEntries, previous?: CaptureEntries): void;
  /** Removes every entry of a workload (including its inbound listener). */
  deleteEntries(cookie: bigint, entries: CaptureEntries): void;
  /** Attaches and pins the programs for a workload; attach points already pinned are kept (adopt). */
  attach(key: string, workload: CaptureWorkload): AttachPoint[];
  /** Detaches and unpins every link of a workload, whether or not it has a record. */
  detach(key: string): void;
  /** Keys (`ns/name`) that have link pins on this node. */
  pinnedWorkloads(): string[];
  /** Registers the inbound (15006) listener of a workload for sk_lookup, under each of its addresses. */
  registerInbound(addresses: readonly string[], listenerFd: number): void;
  /** Removes the node's maps' pins and directory (after every workload is unenrolled). */
  removeNodePins(): void;
  close(): void;
}
