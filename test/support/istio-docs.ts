// Istio's ambient documents as istio.io prints them, unchanged (each with its page), shared by the
// tests that prove nodemesh accepts them: the translation unit test (control/resources/istio) and
// the live-traffic lab test (test/mesh/istio-example). Bookinfo's names; the docs' namespace `foo`
// (PeerAuthentication) is `default` here, applied with `-n default` as the docs apply it with
// `-n foo`.

// https://istio.io/latest/docs/ambient/getting-started/secure-and-visualize/ ("Add Bookinfo to the
// mesh": kubectl label namespace default istio.io/dataplane-mode=ambient), as a Namespace document.
export const ISTIO_ENROLL = `
apiVersion: v1
kind: Namespace
metadata:
  name: default
  labels:
    istio.io/dataplane-mode: ambient
`;

// https://istio.io/latest/docs/ambient/getting-started/enforce-auth-policies/ ("Enforce Layer 4
// authorization policy"), unchanged.
export const ISTIO_L4 = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: productpage-ztunnel
  namespace: default
spec:
  selector:
    matchLabels:
      app: productpage
  action: ALLOW
  rules:
  - from:
    - source:
        principals:
        - cluster.local/ns/default/sa/bookinfo-gateway-istio
`;

// https://istio.io/latest/docs/ambient/usage/waypoint/ (`istioctl waypoint generate --for service -n
// default` output), and the label `istioctl waypoint apply --enroll-namespace` puts on the namespace
// (https://istio.io/latest/docs/ambient/getting-started/enforce-auth-policies/: namespace default
// labeled with "istio.io/use-waypoint: waypoint").
export const ISTIO_WAYPOINT = `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  labels:
    istio.io/waypoint-for: service
  name: waypoint
  namespace: default
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
---
apiVersion: v1
kind: Namespace
metadata:
  name: default
  labels:
    istio.io/dataplane-mode: ambient
    istio.io/use-waypoint: waypoint
`;

// https://istio.io/latest/docs/ambient/getting-started/enforce-auth-policies/ ("Enforce Layer 7
// authorization policy": the L7 policy, then the L4 policy updated to admit the waypoint), unchanged.
export const ISTIO_L7 = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: productpage-waypoint
  namespace: default
spec:
  targetRefs:
  - kind: Service
    group: ""
    name: productpage
  action: ALLOW
  rules:
  - from:
    - source:
        principals:
        - cluster.local/ns/default/sa/curl
    to:
    - operation:
        methods: ["GET"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: productpage-ztunnel
  namespace: default
spec:
  selector:
    matchLabels:
      app: productpage
  action: ALLOW
  rules:
  - from:
    - source:
        principals:
        - cluster.local/ns/default/sa/bookinfo-gateway-istio
        - cluster.local/ns/default/sa/waypoint
`;

// https://istio.io/latest/docs/tasks/security/authentication/mtls-migration/ ("Lock down to mutual
// TLS by namespace"), unchanged; applied as the docs do (`kubectl apply -n foo -f -`) with
// `nodemesh apply -n default -f`: the docs' namespace foo is this lab's default.
export const ISTIO_STRICT = `
apiVersion: "security.istio.io/v1beta1"
kind: "PeerAuthentication"
metadata:
  name: "default"
spec:
  mtls:
    mode: STRICT
`;

/** An Istio policy document in nodemesh's own API group (same fields, same meaning). */
export const nodemeshPolicySpelling = (istio: string): string => istio.replace(/security\.istio\.io\/v1(beta1)?/g, 'security.nodemesh.io/v1alpha1');
