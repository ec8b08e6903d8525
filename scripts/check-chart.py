#!/usr/bin/env python3
"""`make lint`: the injector's Helm chart, rendered with its default values, must install what
deploy/k8s/50-injector.yaml holds (the plain manifests stay for users without Helm, and the
two must not drift apart).

    check-chart.py RENDERED.yaml deploy/k8s/50-injector.yaml

Compared object by object (kind and name) after taking out what only Helm adds: its labels
(app.kubernetes.io/*, helm.sh/chart), the pod template's settings checksum, and the Namespace
(Helm installs into a release namespace it does not own). The settings file inside the
ConfigMap is compared as parsed YAML. Prints each difference with its path; exit 1 if any.
"""
import sys

import yaml

HELM_LABEL_PREFIXES = ("app.kubernetes.io/", "helm.sh/")


def strip_helm(obj):
    """The object without what the chart adds for Helm's own bookkeeping."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key in ("labels", "matchLabels") and isinstance(value, dict):
                value = {k: v for k, v in value.items() if not k.startswith(HELM_LABEL_PREFIXES)}
                if not value and key == "labels":
                    continue
            if key == "annotations" and isinstance(value, dict):
                value = {k: v for k, v in value.items() if not k.startswith("checksum/")}
                if not value:
                    continue
            if key == "selector" and isinstance(value, dict) and "matchLabels" not in value:
                # A Service selector: a plain label map.
                value = {k: v for k, v in value.items() if not k.startswith(HELM_LABEL_PREFIXES)}
            out[key] = strip_helm(value)
        return out
    if isinstance(obj, list):
        return [strip_helm(v) for v in obj]
    return obj


def load(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    objects = {}
    for doc in docs:
        if doc["kind"] == "Namespace":
            continue
        if doc["kind"] == "ConfigMap" and "settings.yaml" in doc.get("data", {}):
            doc["data"]["settings.yaml"] = yaml.safe_load(doc["data"]["settings.yaml"])
        key = (doc["kind"], doc["metadata"]["name"])
        if key in objects:
            sys.exit(f"{path}: {key[0]} {key[1]} appears twice")
        objects[key] = strip_helm(doc)
    return objects


def diff(a, b, path, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a:
                out.append(f"{path}.{k}: only in the manifests: {b[k]!r}")
            elif k not in b:
                out.append(f"{path}.{k}: only in the chart: {a[k]!r}")
            else:
                diff(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: chart {a!r}, manifests {b!r}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    chart, manifests = load(sys.argv[1]), load(sys.argv[2])
    problems = []
    for key in sorted(set(chart) | set(manifests)):
        name = f"{key[0]}/{key[1]}"
        if key not in manifests:
            problems.append(f"{name}: rendered by the chart, not in {sys.argv[2]}")
        elif key not in chart:
            problems.append(f"{name}: in {sys.argv[2]}, not rendered by the chart")
        else:
            diff(chart[key], manifests[key], name, problems)
    for p in problems:
        print(f"check-chart: {p}", file=sys.stderr)
    if problems:
        print(f"check-chart: the chart's default rendering differs from {sys.argv[2]} "
              f"({len(problems)} difference(s))", file=sys.stderr)
        return 1
    print(f"check-chart: the chart renders the {len(chart)} objects of {sys.argv[2]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
