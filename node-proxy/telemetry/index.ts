// Telemetry of the node proxy: Istio TCP metrics, health metrics, access log, metrics endpoint.
export { NodeProxyTelemetry, type TelemetryOptions, type ConnectionHandle, type BpfMapFill } from './metrics';
export { tcpLabels, TCP_LABEL_NAMES, DEFAULT_CLUSTER, type ConnectionRecord, type ConnectionPeer, type TcpLabels, type ResponseFlag } from './labels';
export { accessLogFields, logConnection, type ConnectionOutcome } from './access-log';
export { startMetricsServer, metricsHandler, type MetricsServer } from './server';
