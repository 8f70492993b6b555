"""Arranges the demo world in the emulator: a REST API named 'apimount-demo'
and one Lambda function for every `spec.function` named by the manifests
given as arguments. Prints the REST API id.

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
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    name = (doc.get("spec") or {}).get("function")
    if isinstance(name, str) and ":" not in name:
        functions.add(name)

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
print(api_id)
