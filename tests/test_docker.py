"""No container engine runs here, so the compose file is checked for what can be checked without one:
every build context, Dockerfile, COPY source, bind mount, port and command refers to something that exists."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from nonsite.cli import build_parser

DOCKER = Path(__file__).resolve().parents[1] / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def test_compose_has_the_whole_deployment():
    assert {"kafka", "worker", "detector", "web", "prometheus", "grafana"} <= set(SERVICES)
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:4.")


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items() if "build" in s])
def test_build_context_dockerfile_and_copies_exist(name):
    build = SERVICES[name]["build"]
    context = (DOCKER / build["context"]).resolve()
    dockerfile = context / build["dockerfile"]
    assert context.is_dir() and dockerfile.is_file()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, _target = line.split()[1:]
            for source in sources:
                assert (context / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"


@pytest.mark.parametrize("name", list(SERVICES))
def test_bind_mounts_exist_and_volumes_are_declared(name):
    for mount in SERVICES[name].get("volumes", []):
        source = mount.split(":")[0]
        if source.startswith((".", "/")):
            assert (DOCKER / source).resolve().exists(), f"{name}: bind mount {source} does not exist"
        else:
            assert source in COMPOSE["volumes"], f"{name}: volume {source} is not declared"


def test_host_ports_are_unique_and_match_commands():
    host_ports = [p.split(":")[0] for s in SERVICES.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports))
    for service in SERVICES.values():
        command = " ".join(service.get("command", []))
        for port in service.get("ports", []):
            container = port.split(":")[1]
            if "nonsite" in command:
                assert container in command, f"port {container} is not what `{command}` listens on"


def test_prometheus_scrapes_services_that_publish_those_ports():
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            service, port = target.split(":")
            assert service in SERVICES, target
            assert any(p.endswith(f":{port}") for p in SERVICES[service].get("ports", [])), target


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items() if "nonsite" in s.get("command", [])])
def test_service_commands_parse_with_the_real_cli(name):
    argv = SERVICES[name]["command"][1:]
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]


def test_no_weights_are_baked_into_images():
    for dockerfile in DOCKER.glob("Dockerfile.*"):
        assert not re.search(r"\.(pt|tflite|onnx)\b", dockerfile.read_text()), dockerfile.name


def _metric_families() -> set[str]:
    from prometheus_client import CollectorRegistry

    import detector.metrics
    from stream.metrics import StreamMetrics

    registry = CollectorRegistry()
    StreamMetrics(registry)
    names = set()
    for source in (detector.metrics.REGISTRY, registry):
        for family in source.collect():
            names.update(sample.name for sample in family.samples)
            names.add(family.name)
    return names


def test_grafana_dashboard_queries_metrics_the_code_exports():
    import json

    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "nonsite.json").read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"nonsite_[a-z_]+", target["expr"])}
    assert queried, "the dashboard queries no nonsite metric"
    exported = _metric_families()
    for name in queried:
        family = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert name in exported or family in exported, f"dashboard queries unknown metric {name}"
