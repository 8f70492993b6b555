"""Prints the routes of a REST API as a tree with who serves each method,
and the stage's deployment. Usage: show_routes.py API_ID STAGE"""
import sys

import boto3

api_id, stage = sys.argv[1], sys.argv[2]
api_gw = boto3.client("apigateway")
items = api_gw.get_resources(restApiId=api_id, embed=["methods"], limit=500)["items"]
for r in sorted(items, key=lambda r: r["path"]):
    depth = 0 if r["path"] == "/" else r["path"].count("/")
    line = "  " * depth + (r["path"] if r["path"] == "/" else "/" + r.get("pathPart", ""))
    methods = r.get("resourceMethods", {})
    for verb, m in sorted(methods.items()):
        integration = m.get("methodIntegration", {})
        target = integration.get("uri", "")
        if "/functions/" in target:
            fn = target.split("/functions/")[-1].split("/invocations")[0]
        else:
            # A MOCK integration (a CORS preflight) answers by itself.
            fn = target or integration.get("type", "no integration")
        line += f"\n{'  ' * (depth + 1)}{verb} -> {fn}  [{m.get('operationName', '')}]"
    print(line)
try:
    s = api_gw.get_stage(restApiId=api_id, stageName=stage)
    d = api_gw.get_deployment(restApiId=api_id, deploymentId=s["deploymentId"])
    print(f"stage {stage} -> deployment {s['deploymentId']} ({d.get('description', '')})")
except api_gw.exceptions.NotFoundException:
    print(f"stage {stage} does not exist yet")
