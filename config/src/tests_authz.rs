//! `AuthorizationPolicy` as Istio's reference and tasks write it: what
//! loads, and what is refused with the field that says why.

use crate::authz::{Attr, AuthzAction, Values};
use crate::testutil::{findings, load};

const GATEWAY: &str = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\n\
    spec:\n  selector: {istio: ingressgateway}\n  servers:\n  \
    - port: {number: 80, protocol: HTTP}\n    hosts: ['*']\n---\n";

/// istio.io "Ingress Gateway" authorization (by IP), as written.
const INGRESS_IP: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ingress-policy
  namespace: istio-system
spec:
  selector:
    matchLabels:
      app: istio-ingressgateway
  action: ALLOW
  rules:
  - from:
    - source:
        ipBlocks: ["1.2.3.4", "5.6.7.0/24"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ingress-remote
  namespace: istio-system
spec:
  selector:
    matchLabels:
      app: istio-ingressgateway
  action: DENY
  rules:
  - from:
    - source:
        remoteIpBlocks: ["192.0.2.0/24"]
"#;

/// The AuthorizationPolicy reference's examples that need no JWT.
const REFERENCE: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: httpbin
  namespace: foo
spec:
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
    - source:
        namespaces: ["test"]
    to:
    - operation:
        methods: ["GET"]
        paths: ["/info*"]
    - operation:
        methods: ["POST"]
        paths: ["/data"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-other-namespaces
  namespace: foo
spec:
  action: DENY
  rules:
  - from:
    - source:
        notNamespaces: ["foo"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
spec: {}
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: audit-admin
spec:
  action: AUDIT
  rules:
  - to:
    - operation:
        ports: ["8080", 8443]
        notPaths: ["/healthz"]
"#;

#[test]
fn istio_examples_load() {
    let m = load(&format!("{GATEWAY}{INGRESS_IP}---\n{REFERENCE}")).unwrap();
    let p = &m.authorization_policies;
    let names: Vec<&str> = p.iter().map(|p| &*p.label).collect();
    assert_eq!(
        names,
        [
            "istio-system/ingress-policy",
            "istio-system/ingress-remote",
            "foo/httpbin",
            "foo/deny-other-namespaces",
            "allow-nothing",
            "audit-admin"
        ]
    );
    assert_eq!(p[0].action, AuthzAction::Allow);
    let check = &p[0].rules[0].from[0][0];
    assert_eq!(check.attr, Attr::SourceIp);
    assert!(matches!(&check.values, Values::Nets(n) if n.len() == 2));
    assert_eq!(p[1].rules[0].from[0][0].attr, Attr::RemoteIp);
    assert_eq!(p[2].rules[0].from.len(), 2);
    assert_eq!(p[2].rules[0].to.len(), 2);
    assert!(p[3].rules[0].from[0][0].negate);
    assert!(p[4].rules.is_empty(), "allow-nothing: no rules");
    let ports = p[5].rules[0].to[0]
        .iter()
        .find(|c| c.attr == Attr::Port)
        .unwrap();
    assert!(matches!(&ports.values, Values::Ports(v) if v == &[8080, 8443]));
}

#[test]
fn what_cannot_be_enforced_is_refused_by_field() {
    let doc = |spec: &str| {
        format!("{GATEWAY}apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p}}\nspec:\n{spec}")
    };
    for (spec, want) in [
        (
            "  action: CUSTOM\n  provider: {name: ext-authz}\n",
            "spec.action: CUSTOM (external authorization) is not supported yet",
        ),
        (
            "  selector: {matchLabels: {app: httpbin}}\n",
            "spec.selector: selects workloads no Gateway's selector names",
        ),
        (
            "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\n",
            "spec.targetRefs: not supported by tlsgate: targetRef names Gateway API objects",
        ),
        (
            "  rules:\n  - from: [{source: {requestPrincipals: ['*']}}]\n",
            "spec.rules[0].from[0].source.requestPrincipals: not supported by tlsgate: request principals come from JWTs",
        ),
        (
            "  rules:\n  - when: [{key: 'request.auth.claims[iss]', values: [x]}]\n",
            "spec.rules[0].when[0].key: request.auth.* comes from JWTs",
        ),
        (
            "  rules:\n  - when: [{key: source.user, values: [x]}]\n",
            "spec.rules[0].when[0].key: unknown key 'source.user'",
        ),
        (
            "  rules:\n  - when: [{key: connection.sni}]\n",
            "spec.rules[0].when[0]: needs values or notValues",
        ),
        (
            "  rules:\n  - to: [{operation: {paths: ['/api/{*}/x']}}]\n",
            "spec.rules[0].to[0].operation.paths[0]: path templates",
        ),
        (
            "  rules:\n  - to: [{operation: {ports: [http]}}]\n",
            "spec.rules[0].to[0].operation.ports[0]: 'http' is not a port number",
        ),
        (
            "  rules:\n  - from: [{source: {ipBlocks: [10.0.0.0/40]}}]\n",
            "spec.rules[0].from[0].source.ipBlocks[0]: invalid address block",
        ),
        ("  action: PERMIT\n", "spec.action: unknown action 'PERMIT'"),
        ("  rules:\n  - form: []\n", "unknown field `form`"),
    ] {
        let (errors, _) = findings(&doc(spec));
        assert_eq!(errors.len(), 1, "{spec}: {errors:#?}");
        assert!(
            errors[0].contains(want),
            "{spec}: want {want:?} in {:?}",
            errors[0]
        );
    }
}

#[test]
fn other_namespaces_and_empty_entries() {
    let gw = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: istio-ingress}\n\
              spec:\n  servers:\n  - port: {number: 80, protocol: HTTP}\n    hosts: ['*']\n---\n";
    let ap = |ns: &str, spec: &str| {
        format!("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p-{ns}, namespace: {ns}}}\nspec:\n{spec}---\n")
    };
    let yaml = format!(
        "{gw}{}{}{}",
        ap("istio-ingress", "  rules: [{}]\n"),
        ap("istio-system", "  action: DENY\n  rules: [{}]\n"),
        ap("shop", "  rules: [{}]\n"),
    );
    let (errors, warnings) = findings(&yaml);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].starts_with("AuthorizationPolicy/p-shop: metadata.namespace: ignored: applies to the workloads of namespace 'shop'"));
    let m = load(&yaml).unwrap();
    let names: Vec<&str> = m.authorization_policies.iter().map(|p| &*p.label).collect();
    assert_eq!(
        names,
        [
            "istio-ingress/p-istio-ingress",
            "istio-system/p-istio-system"
        ]
    );

    let (errors, _) = findings(&format!(
        "{gw}{}",
        ap(
            "istio-ingress",
            "  rules:\n  - from: [{source: {}}]\n    to: [{operation: {}}]\n"
        )
    ));
    assert_eq!(
        errors,
        ["AuthorizationPolicy/p-istio-ingress: spec.rules[0].from[0].source: empty: it would match everything; name what it matches"]
    );
}
