"""Publishes a new version of a demo function (its description changed, as a
new build would change its code) and prints the version's number.

Runs with the boto3 that comes with moto in .venv; talks only to AWS_ENDPOINT_URL.
Usage: demo_release.py FUNCTION
"""
import sys

import boto3

name = sys.argv[1]
lam = boto3.client("lambda")
versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]]
build = len([v for v in versions if v != "$LATEST"]) + 1
lam.update_function_configuration(FunctionName=name, Description=f"build {build}")
print(lam.publish_version(FunctionName=name)["Version"])
