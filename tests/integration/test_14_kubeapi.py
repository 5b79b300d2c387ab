"""The test Kubernetes API server (kube_api.py) against a client nobody here
wrote: Debian's python3-kubernetes, the official Python client.  It lists,
watches (with bookmarks, and 410 Gone after a compaction) and patches the
status subresource; a wrong token and a wrong server certificate are
refused.  If these pass, sluice-k8s watch is tested against the protocol the
official client speaks, not against our reading of it."""
import os
import threading
import time

import certs
from harness import TestFailure, check, eq
from kube_api import GW, KubeAPI

try:
    import kubernetes  # Debian's python3-kubernetes (tests/deps.sh)
    from kubernetes import client as kclient
    from kubernetes import config as kconfig
    from kubernetes import watch as kwatch
except ImportError:  # pragma: no cover - reported by every test below
    kubernetes = None


def _need_client():
    if kubernetes is None:
        raise TestFailure("python3-kubernetes is not installed (run 'make deps' as root)")


def route(name, ns="default", host="a.example.test", svc="web", port=80):
    return {"apiVersion": GW + "/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host],
                     "rules": [{"backendRefs": [{"name": svc, "port": port}]}]}}


def seed(api):
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default",
                                                                     "labels": {"team": "a"}}})
    api.create({"apiVersion": GW + "/v1", "kind": "Gateway",
                "metadata": {"name": "gw", "namespace": "default"},
                "spec": {"gatewayClassName": "sluice",
                         "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}})
    api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    api.create({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "web-1", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    api.create({"apiVersion": GW + "/v1beta1", "kind": "ReferenceGrant",
                "metadata": {"name": "grant", "namespace": "default"},
                "spec": {"from": [{"group": GW, "kind": "HTTPRoute", "namespace": "other"}],
                         "to": [{"group": "", "kind": "Service"}]}})
    api.create(route("r1"))


def start(env, **kw):
    pki = certs.make(env)
    api = KubeAPI(pki, **kw).start()
    seed(api)
    return pki, api


def client_for(env, api, **kw):
    path = api.kubeconfig(os.path.join(env.tmp, "kubeconfig"), **kw)
    return kconfig.new_client_from_config(config_file=path)


def test_kubeapi_official_client_lists(env):
    _need_client()
    pki, api = start(env)
    try:
        c = client_for(env, api)
        core = kclient.CoreV1Api(c)
        svcs = core.list_namespaced_service("default")
        eq([s.metadata.name for s in svcs.items], ["web"], "services listed")
        eq(svcs.items[0].spec.ports[0].target_port, 8080, "typed Service decoded")
        check(int(svcs.metadata.resource_version) >= 106, "list resourceVersion %r"
              % svcs.metadata.resource_version)
        eps = kclient.DiscoveryV1Api(c).list_namespaced_endpoint_slice("default")
        eq(eps.items[0].endpoints[0].addresses, ["127.0.0.1"], "typed EndpointSlice decoded")
        eq(eps.items[0].endpoints[0].conditions.ready, True, "endpoint ready")
        nss = core.list_namespace()
        eq(nss.items[0].metadata.labels, {"team": "a"}, "Namespace labels")
        co = kclient.CustomObjectsApi(c)
        routes = co.list_namespaced_custom_object(GW, "v1", "default", "httproutes")
        eq(routes["kind"], "HTTPRouteList", "list kind")
        eq([r["metadata"]["name"] for r in routes["items"]], ["r1"], "routes listed")
        eq(routes["items"][0]["metadata"]["generation"], 1, "generation")
        allr = co.list_cluster_custom_object(GW, "v1", "httproutes")
        eq(len(allr["items"]), 1, "routes in all namespaces")
        g1 = co.list_cluster_custom_object(GW, "v1beta1", "referencegrants")
        g2 = co.list_namespaced_custom_object(GW, "v1", "default", "referencegrants")
        eq(g1["items"][0]["apiVersion"], GW + "/v1beta1", "grant served as v1beta1")
        eq(g2["items"][0]["apiVersion"], GW + "/v1", "the same grant served as v1")
        gw = co.get_namespaced_custom_object(GW, "v1", "default", "gateways", "gw")
        eq(gw["spec"]["gatewayClassName"], "sluice", "get one object")
        try:
            co.get_namespaced_custom_object(GW, "v1", "default", "gateways", "nope")
            raise TestFailure("a missing object was found")
        except kclient.ApiException as e:
            eq(e.status, 404, "missing object")
        # created through the client: POST, then 409 for the same name
        co.create_namespaced_custom_object(GW, "v1", "default", "httproutes", route("r2"))
        try:
            co.create_namespaced_custom_object(GW, "v1", "default", "httproutes", route("r2"))
            raise TestFailure("a second create of the same name succeeded")
        except kclient.ApiException as e:
            eq(e.status, 409, "create of an existing name")
        # a wrong token is 401
        bad = client_for(env, api, token="wrong")
        try:
            kclient.CoreV1Api(bad).list_namespaced_service("default")
            raise TestFailure("a wrong token was accepted")
        except kclient.ApiException as e:
            eq(e.status, 401, "wrong token")
    finally:
        api.stop()


def test_kubeapi_official_client_watches(env):
    _need_client()
    pki, api = start(env, bookmark_interval=30.0)
    try:
        c = client_for(env, api)
        co = kclient.CustomObjectsApi(c)
        rv = co.list_namespaced_custom_object(GW, "v1", "default", "httproutes")["metadata"]["resourceVersion"]

        def writer():
            time.sleep(0.2)
            api.create(route("r2"))
            r = route("r2", host="b.example.test")
            api.update(r)
            api.delete("HTTPRoute", "default", "r2")
            # something else in another namespace or kind is not in this watch
            api.create(dict(route("x"), metadata={"name": "x", "namespace": "other"}))
            api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}})
            time.sleep(0.1)
            api.bookmark_now()

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        w = kwatch.Watch()
        seen = []
        for ev in w.stream(co.list_namespaced_custom_object, GW, "v1", "default", "httproutes",
                           resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=5):
            o = ev["raw_object"]
            seen.append((ev["type"], o["metadata"].get("name"), int(o["metadata"]["resourceVersion"])))
            if ev["type"] == "BOOKMARK":
                w.stop()
        t.join(5)
        eq([(s[0], s[1]) for s in seen],
           [("ADDED", "r2"), ("MODIFIED", "r2"), ("DELETED", "r2"), ("BOOKMARK", None)],
           "events of a watch from the listed resourceVersion")
        rvs = [s[2] for s in seen]
        check(rvs == sorted(rvs) and rvs[0] > int(rv), "resourceVersions go up: %s (list %s)" % (rvs, rv))
        check(rvs[3] >= api.rv - 0, "the bookmark carries the newest resourceVersion %d: %s" % (api.rv, rvs))

        # a typed watch from "no resourceVersion": the existing objects as ADDED
        core = kclient.CoreV1Api(c)
        w2 = kwatch.Watch()
        got = []
        for ev in w2.stream(core.list_namespaced_service, "default", timeout_seconds=1):
            got.append((ev["type"], type(ev["object"]).__name__, ev["object"].metadata.name))
            w2.stop()
        eq(got, [("ADDED", "V1Service", "web")], "watch without resourceVersion")

        # the watch's timeoutSeconds ends the stream cleanly
        t0 = time.monotonic()
        n = sum(1 for _ in kwatch.Watch().stream(core.list_namespaced_secret, "default",
                                                  resource_version=str(api.rv), timeout_seconds=1))
        dt = time.monotonic() - t0
        eq(n, 0, "events on a quiet watch")
        check(0.8 < dt < 3.0, "timeoutSeconds=1 ended the watch after %.2f s" % dt)

        # after a compaction an old resourceVersion is 410 Gone, for watch and exact list
        api.compact()
        try:
            for _ in kwatch.Watch().stream(co.list_namespaced_custom_object, GW, "v1", "default",
                                           "httproutes", resource_version=rv, timeout_seconds=2):
                raise TestFailure("an event from a compacted resourceVersion")
            raise TestFailure("a watch from a compacted resourceVersion ended without 410")
        except kclient.ApiException as e:
            eq(e.status, 410, "watch from a compacted resourceVersion")
        try:
            core.list_namespaced_service("default", resource_version=rv, resource_version_match="Exact")
            raise TestFailure("an exact list at a compacted resourceVersion succeeded")
        except kclient.ApiException as e:
            eq(e.status, 410, "exact list at a compacted resourceVersion")
        # but the newest one still watches
        cur = co.list_namespaced_custom_object(GW, "v1", "default", "httproutes")["metadata"]["resourceVersion"]
        threading.Timer(0.2, lambda: api.create(route("r3"))).start()
        got = []
        for ev in kwatch.Watch().stream(co.list_namespaced_custom_object, GW, "v1", "default",
                                        "httproutes", resource_version=cur, timeout_seconds=2):
            got.append((ev["type"], ev["raw_object"]["metadata"]["name"]))
            break
        eq(got, [("ADDED", "r3")], "watch from the listed resourceVersion after compaction")
    finally:
        api.stop()


def test_kubeapi_official_client_patches_status(env):
    _need_client()
    pki, api = start(env)
    try:
        c = client_for(env, api)
        co = kclient.CustomObjectsApi(c)
        before = api.get("HTTPRoute", "default", "r1")
        status = {"parents": [{"parentRef": {"name": "gw"}, "controllerName": "sluice.dev/gateway",
                               "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                                               "message": "", "observedGeneration": 1,
                                               "lastTransitionTime": "2026-01-01T00:00:00Z"}]}]}
        out = co.patch_namespaced_custom_object_status(
            GW, "v1", "default", "httproutes", "r1",
            {"status": status, "spec": {"hostnames": ["changed.example.test"]}})
        eq(out["status"], status, "status returned by the patch")
        after = api.get("HTTPRoute", "default", "r1")
        eq(after["status"], status, "status stored")
        eq(after["spec"], before["spec"], "the status subresource leaves spec alone")
        eq(after["metadata"]["generation"], 1, "a status write does not bump generation")
        check(int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"]),
              "a status write bumps resourceVersion")
        eq(api.log[-1][1], "MODIFIED", "a status write is a watch event")
        # a write to the main resource leaves status alone and bumps generation
        out = co.patch_namespaced_custom_object(GW, "v1", "default", "httproutes", "r1",
                                                {"spec": {"hostnames": ["b.example.test"]},
                                                 "status": None})
        eq(out["status"], status, "status kept by a main-resource patch")
        eq(out["metadata"]["generation"], 2, "generation after a spec change")
        eq(out["spec"]["hostnames"], ["b.example.test"], "spec patched")
        # an optimistic-concurrency conflict: a stale resourceVersion is 409
        try:
            co.patch_namespaced_custom_object_status(
                GW, "v1", "default", "httproutes", "r1",
                {"metadata": {"resourceVersion": before["metadata"]["resourceVersion"]}, "status": {}})
            raise TestFailure("a stale resourceVersion was accepted")
        except kclient.ApiException as e:
            eq(e.status, 409, "stale resourceVersion")
        # Gateway status with addresses and listener conditions, through the client
        gst = {"addresses": [{"type": "IPAddress", "value": "127.0.0.1"}],
               "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed",
                               "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
               "listeners": [{"name": "http", "attachedRoutes": 1, "supportedKinds": [{"kind": "HTTPRoute"}],
                              "conditions": []}]}
        co.patch_namespaced_custom_object_status(GW, "v1", "default", "gateways", "gw", {"status": gst})
        eq(api.get("Gateway", "default", "gw")["status"], gst, "Gateway status")
        # typed core status patch (strategic merge patch content type)
        kclient.CoreV1Api(c).patch_namespaced_service_status(
            "web", "default", {"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}})
        eq(api.get("Service", "default", "web")["status"]["loadBalancer"]["ingress"][0]["ip"],
           "127.0.0.1", "Service status")
        eq(api.count("PATCH", "/status"), 4, "status PATCH requests seen")
    finally:
        api.stop()


def test_kubeapi_wrong_server_certificate_refused(env):
    _need_client()
    pki, api = start(env, cert="self")
    try:
        c = client_for(env, api)
        c.configuration.retries = 0
        try:
            kclient.CoreV1Api(c).list_namespaced_service("default", _request_timeout=3)
            raise TestFailure("a server certificate not signed by the kubeconfig's CA was accepted")
        except kclient.ApiException as e:
            raise TestFailure("the request reached the server: %s" % e.status)
        except Exception as e:  # urllib3's SSLError / MaxRetryError
            check("CERTIFICATE_VERIFY_FAILED" in str(e) or "certificate verify failed" in str(e),
                  "refused for another reason: %s" % e)
        eq(api.count("GET", "/services"), 0, "requests that got through")
    finally:
        api.stop()
