"""The demo's hand edit, and the check that the controller undid it.

  demo_drift.py break API_ID PATH VERB FUNCTION
      points PATH's VERB integration at FUNCTION's ARN, as someone editing
      the console would; prints the URI it replaced.
  demo_drift.py healed API_ID PATH VERB URI TIMEOUT_S
      waits until the integration points at URI again; exit 1 on timeout.
  demo_drift.py gone API_ID PATH - TIMEOUT_S
      waits until PATH is no longer a resource of the API; exit 1 on timeout.
"""
import sys
import time

import boto3

api_gw = boto3.client("apigateway")


def find(api_id, path):
    for r in api_gw.get_resources(restApiId=api_id, limit=500)["items"]:
        if r["path"] == path:
            return r["id"]
    return None


def resource_id(api_id, path):
    rid = find(api_id, path)
    if rid is None:
        sys.exit(f"demo_drift: no resource {path} on {api_id}")
    return rid


def uri(api_id, rid, verb):
    return api_gw.get_integration(restApiId=api_id, resourceId=rid, httpMethod=verb)["uri"]


cmd, api_id, path, verb = sys.argv[1:5]
if cmd == "gone":
    timeout = float(sys.argv[5])
    deadline = time.monotonic() + timeout
    while find(api_id, path) is not None:
        if time.monotonic() > deadline:
            sys.exit(f"demo_drift: {path} still on the API after {timeout:.0f} s")
        time.sleep(0.5)
    sys.exit(0)
rid = resource_id(api_id, path)
if cmd == "break":
    function = sys.argv[5]
    before = uri(api_id, rid, verb)
    arn = boto3.client("lambda").get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    region = api_gw.meta.region_name
    partition = arn.split(":")[1]
    target = f"arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations"
    api_gw.put_integration(restApiId=api_id, resourceId=rid, httpMethod=verb, type="AWS_PROXY",
                           integrationHttpMethod="POST", uri=target)
    print(before)
elif cmd == "healed":
    want, timeout = sys.argv[5], float(sys.argv[6])
    deadline = time.monotonic() + timeout
    while uri(api_id, rid, verb) != want:
        if time.monotonic() > deadline:
            sys.exit(f"demo_drift: {verb} {path} still not healed after {timeout:.0f} s")
        time.sleep(0.5)
else:
    sys.exit(f"demo_drift: unknown command {cmd}")
