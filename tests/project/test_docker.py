"""No container engine runs here (podman installs, but cannot reach Docker Hub for the base image and
crun may not set rlimits in this sandbox), so the compose file and Dockerfiles are checked for what can
be checked without one: every build context, Dockerfile, COPY source, bind mount, port and command
refers to something that exists; images install the project from its pyproject extras, list no
dependency by hand, and COPY every package their processes import."""
from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from nonsite.cli import build_parser
from test_packaging import ENTRY, EXTRAS, PROJECT, import_closure

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
PYPROJECT = tomllib.loads((DOCKER.parent / "pyproject.toml").read_text())
# `nonsite <command>` in compose -> the process whose modules and extra it needs
PROCESS = {"worker": "worker", "web": "web", "detect": "detector", "kafka": "worker"}


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
    from stream.runtime.metrics import StreamMetrics

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


def _pip_installs(dockerfile: Path) -> list[list[str]]:
    """The arguments of every `pip install` in the Dockerfile's RUN lines (continuations joined)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    runs = [line[4:] for line in text.splitlines() if line.startswith("RUN ")]
    commands = [shlex.split(part) for run in runs for part in re.split(r"&&|;", run)]
    return [c[2:] for c in commands if c[:2] == ["pip", "install"]]


def _requirements(args: list[str]) -> list[str]:
    """The positional arguments of `pip install` (option values such as index URLs dropped)."""
    with_value = {"--index-url", "--extra-index-url", "-i", "--find-links", "-f"}
    kept, skip = [], False
    for arg in args:
        if not skip and not arg.startswith("-"):
            kept.append(arg)
        skip = arg in with_value
    return kept


def _extras(dockerfile: Path) -> set[str]:
    (install,) = _pip_installs(dockerfile)
    (target,) = _requirements(install)
    match = re.fullmatch(r"\.\[([a-z,]+)\]", target)
    assert match, f"{dockerfile.name} installs {target!r}, not the project with its extras"
    return set(match.group(1).split(","))


def _copied_packages(dockerfile: Path) -> set[str]:
    lines = [line.split()[1:-1] for line in dockerfile.read_text().splitlines() if line.startswith("COPY ")]
    return {source.removeprefix("./").rstrip("/") for sources in lines for source in sources}


def _built_services():
    for name, service in SERVICES.items():
        if "build" in service and service.get("command", [None])[0] == "nonsite":
            yield name, DOCKER / service["build"]["context"] / service["build"]["dockerfile"]


@pytest.mark.parametrize("dockerfile", sorted(DOCKER.glob("Dockerfile.*")), ids=lambda p: p.name)
def test_images_install_only_the_project_with_pyproject_extras(dockerfile):
    extras = _extras(dockerfile)
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"]) - {"test"}
    assert not re.search(r"[A-Za-z0-9_.-]+(==|>=|~=)\d", dockerfile.read_text()), "a dependency listed by hand"


def test_worker_image_has_no_torch_extra():
    assert _extras(DOCKER / "Dockerfile.worker") == {"worker", "web"}
    assert _extras(DOCKER / "Dockerfile.detector") == {"detector"}
    for extra in ("worker", "web"):
        for requirement in PYPROJECT["project"]["optional-dependencies"][extra] + PYPROJECT["project"]["dependencies"]:
            assert not re.match(r"(torch|ultralytics)\b", requirement), f"[{extra}] pulls torch: {requirement}"


@pytest.mark.parametrize("name", [n for n, _ in _built_services()])
def test_image_copies_every_package_and_installs_the_extra_its_command_needs(name):
    dockerfile = dict(_built_services())[name]
    process = PROCESS[SERVICES[name]["command"][1]]
    modules, _ = import_closure(ENTRY[process])
    needed = {m.split(".")[0] for m in modules}
    assert needed <= set(PROJECT)
    missing = needed - _copied_packages(dockerfile)
    assert not missing, f"{dockerfile.name} does not COPY {sorted(missing)}, which `{name}` imports"
    assert EXTRAS[process] in _extras(dockerfile)
    assert {"pyproject.toml", "README.md"} <= _copied_packages(dockerfile)
