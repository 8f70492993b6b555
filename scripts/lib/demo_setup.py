"""Arranges the demo world in the emulator: a REST API named 'apimount-demo',
one Lambda function for every `spec.function` named by the manifests given
as arguments, the versions their releases name and the alarms they watch.
Prints the REST API id.

Idempotent: reuses the API and any function that already exists. Runs with
the boto3 that comes with moto in .venv; talks only to AWS_ENDPOINT_URL.
Usage: demo_setup.py MANIFEST...
"""
import io
import json
import sys
import zipfile

import boto3
import yaml

functions = set()
# Releases: the version each function must have published, and the alarms.
versions = {}
alarms = set()
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    spec = doc.get("spec") or {}
    name = spec.get("function")
    if isinstance(name, str) and ":" not in name:
        functions.add(name)
        release = spec.get("release") or {}
        if "version" in release:
            versions[name] = max(versions.get(name, 0), int(release["version"]))
        alarms.update(release.get("alarms") or [])

api_gw = boto3.client("apigateway")
lam = boto3.client("lambda")
iam = boto3.client("iam")

apis = [a for a in api_gw.get_rest_apis()["items"] if a["name"] == "apimount-demo"]
api_id = apis[0]["id"] if apis else api_gw.create_rest_api(name="apimount-demo")["id"]

trust = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
})
try:
    role_arn = iam.get_role(RoleName="apimount-demo")["Role"]["Arn"]
except iam.exceptions.NoSuchEntityException:
    role_arn = iam.create_role(RoleName="apimount-demo", AssumeRolePolicyDocument=trust)["Role"]["Arn"]

buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("handler.py", "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n")
for name in sorted(functions):
    try:
        lam.get_function(FunctionName=name)
    except lam.exceptions.ResourceNotFoundException:
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=role_arn,
                            Handler="handler.handler", Code={"ZipFile": buf.getvalue()})
for name, wanted in sorted(versions.items()):
    published = [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]]
    have = max([int(v) for v in published if v != "$LATEST"], default=0)
    while have < wanted:
        have += 1
        lam.update_function_configuration(FunctionName=name, Description=f"build {have}")
        lam.publish_version(FunctionName=name)
cloudwatch = boto3.client("cloudwatch")
for alarm in sorted(alarms):
    cloudwatch.put_metric_alarm(AlarmName=alarm, Namespace="AWS/Lambda", MetricName="Errors",
                                Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                                ComparisonOperator="GreaterThanOrEqualToThreshold")
print(api_id)
