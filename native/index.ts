// The native addon's typed API: BPF objects, programs, maps and links (libbpf), sockets inside
// another network namespace, kernel probes, and the layouts of the capture maps.
// The addon is built by `bash scripts/setup.sh`; using any of this before that throws an error
// saying so.
export { NativeError, addonPath } from './binding';
export { BpfObject, BpfProgram, unpin, type MapSpec, type OpenOptions, type ProgramSpec } from './object';
export { BpfMap, UpdateFlags, type MapInfo, type UpdateFlag } from './map';
export { BpfLink, type LinkInfo } from './link';
export {
  closeNetnsWorkers,
  configureNetnsWorkers,
  connectInNetns,
  fdOf,
  listenInNetns,
  netnsCookie,
  netnsWorkers,
  releaseNetns,
  setMark,
  socketCookie,
  socketNetnsCookie,
  type ConnectInNetnsOptions,
  type ListenInNetnsOptions,
  type NetnsWorker,
  type NetnsWorkerConfig,
} from './netns';
export { closeNetnsCookieProbe, hasSockoptNetnsCookie, NETNS_PROBE_OBJECT, netnsCookieProbeIds, ownCgroupDir, type NetnsCookieMethod } from './netns-cookie';
export { Helpers, libbpfVersion, probeCaptureFeatures, probeHelper, probeMapType, probeProgramType, type Feature, type HelperName } from './probe';
export * as layout from './layout';
