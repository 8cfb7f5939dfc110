import { describe, expect, it } from 'vitest';
import { endpointLabels, parseBaggage, parseClusterName, peerLabels, requestProtocol, serviceLabels } from './labels';

describe('waypoint metric labels (Istio standard)', () => {
  it('destination_service is the host of an outbound|port|subset|host cluster, else the request host without port', () => {
    expect(serviceLabels('outbound|80||reviews.bookinfo.svc.cluster.local', '10.96.0.9:80')).toEqual({
      destination_service: 'reviews.bookinfo.svc.cluster.local',
      destination_service_name: 'reviews',
      destination_service_namespace: 'bookinfo',
    });
    expect(serviceLabels('outbound|9080|v2|ratings.bookinfo.svc.example.org', 'x')).toMatchObject({
      destination_service_name: 'ratings',
      destination_service_namespace: 'bookinfo',
    });
    expect(serviceLabels('plain-cluster', 'api.example.com:8443')).toEqual({
      destination_service: 'api.example.com',
      destination_service_name: 'api.example.com',
      destination_service_namespace: 'unknown',
    });
    expect(serviceLabels('', '[fd00::1]:80').destination_service).toBe('fd00::1');
    expect(serviceLabels('', '').destination_service).toBe('unknown');
    expect(parseClusterName('outbound|x||h')).toBeUndefined();
    expect(parseClusterName('inbound-vip|80|http|h')).toBeUndefined();
  });

  it('source labels from the SPIFFE ID and the CONNECT baggage (decoded, first value wins)', () => {
    expect(parseBaggage('a=1, b=x%20y;prop=1,bad,=v,a=2')).toEqual(
      new Map([
        ['a', '1'],
        ['b', 'x y'],
      ]),
    );
    expect(
      peerLabels(
        'spiffe://cluster.local/ns/shop/sa/fe',
        'k8s.namespace.name=shop,k8s.statefulset.name=db,service.name=db,service.version=2,k8s.cluster.name=c1',
      ),
    ).toEqual({
      source_workload: 'db',
      source_workload_namespace: 'shop',
      source_principal: 'spiffe://cluster.local/ns/shop/sa/fe',
      source_app: 'db',
      source_version: '2',
      source_canonical_service: 'db',
      source_canonical_revision: '2',
      source_cluster: 'c1',
      connection_security_policy: 'mutual_tls',
    });
    // plaintext, no baggage: nothing known
    expect(peerLabels(undefined, undefined)).toMatchObject({
      source_workload: 'unknown',
      source_workload_namespace: 'unknown',
      source_principal: 'unknown',
      source_app: 'unknown',
      source_canonical_revision: 'unknown',
      connection_security_policy: 'none',
    });
    // baggage claiming another namespace than the certificate is not believed
    expect(peerLabels('spiffe://cluster.local/ns/shop/sa/fe', 'k8s.namespace.name=prod,k8s.deployment.name=pay')).toMatchObject({
      source_workload: 'unknown',
      source_workload_namespace: 'shop',
    });
  });

  it('destination principal and namespace from the endpoint identity; workload unknown (EDS does not name it)', () => {
    expect(endpointLabels('spiffe://td/ns/a/sa/b')).toMatchObject({
      destination_principal: 'spiffe://td/ns/a/sa/b',
      destination_workload_namespace: 'a',
      destination_workload: 'unknown',
    });
    expect(endpointLabels(undefined)).toMatchObject({ destination_principal: 'unknown', destination_workload_namespace: 'unknown' });
  });

  it('request_protocol: grpc for application/grpc[+proto], http otherwise', () => {
    expect(requestProtocol('application/grpc')).toBe('grpc');
    expect(requestProtocol('application/grpc+proto')).toBe('grpc');
    expect(requestProtocol('application/grpc-web')).toBe('http');
    expect(requestProtocol('application/json')).toBe('http');
    expect(requestProtocol(undefined)).toBe('http');
  });
});
