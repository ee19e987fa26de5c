"""The image the Dockerfile builds, without Docker: its default command, the documented
`docker run`, and every container of contrib that runs it, each loads with 0 config errors.

hadolint checks the Dockerfile's form; it cannot see that the image runs other checks than the
README says, lacks the plugin the repository's checks.d needs, or that a manifest points probed
at a path nothing provides. So this test builds the image's file layout in a scratch directory
by executing the Dockerfile: COPY (build context filtered by .dockerignore, --from stages),
WORKDIR, ENV, and the RUN steps it knows (`pip install` of the project, `mkdir -p`; user
creation has no effect outside a container). The base image is this test environment's Python
with the project's dependencies; the project itself is installed from the copied context, so
the package data the image gets is what the context holds. Then it runs ENTRYPOINT + CMD with
the image's environment, paths mapped into the layout, as `probed validate` and as
`probed run` (polled on /health/live, then stopped).

Containers of contrib (Kubernetes manifests, compose) run the same way with their command,
args, env and mounts laid over the image: ConfigMaps and Secrets (the placeholders of
kubernetes/examples/ stand for the Secrets the reader provides), emptyDirs, bind mounts, tmpfs.
Every absolute path a container's command line or PROBED_* variable names must then exist.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from tests.contrib._tools import CONTRIB, ROOT, output, run
from tests.servers._util import free_port, wait_until

DOCKERFILE: Final = ROOT / "Dockerfile"
EMBEDDED_CHECKS: Final = {"host-disk-root", "host-memory", "host-cpu"}
PATH_VARIABLES: Final = ("PROBED_CHECKS_DIR", "PROBED_PLUGINS_DIR", "PROBED_CONFIG")
SITE: Final = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


# --- the Dockerfile ---------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        keyword, _, args = whole.partition(" ")
        found.append((keyword.upper(), args.strip()))
    return found


def dockerignore(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) of each .dockerignore pattern, in order."""
    patterns = []
    if not path.is_file():
        return patterns
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        patterns.append((negated, re.compile(regex + r"\Z")))
    return patterns


def in_context(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in patterns:
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negated
    return not excluded


@dataclass
class Image:
    """The final stage's file layout and its runtime configuration."""

    root: Path
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)

    def host(self, path: str) -> Path:
        """Where a path of the container is in the layout."""
        return self.root / path.lstrip("/")


def _copy(source: Path, dest: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, dest, dirs_exist_ok=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)


def _context_files(context: Path, source: str, patterns: list[Any]) -> list[Path]:
    """Files of the build context under ``source`` (a file, a folder or a glob)."""
    matches = (
        sorted(context.glob(source)) if any(c in source for c in "*?[") else [context / source]
    )
    files = []
    for match in matches:
        candidates = sorted(match.rglob("*")) if match.is_dir() else [match]
        for path in candidates:
            relative = path.relative_to(context).as_posix()
            if path.is_file() and in_context(relative, patterns):
                files.append(path)
    return files


def _install_project(source: Path, prefix: Path) -> bool:
    """Build the project's wheel from ``source`` and unpack it under ``prefix`` as pip would
    (package, package data, console scripts). Never `pip install`: with a probed already
    installed here, pip would uninstall it from this environment first."""
    wheels = source.parent / f"{source.name}-wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
               str(wheels), str(source)]  # fmt: skip
    # Offline with this environment's setuptools and wheel; else with pip's isolated build
    # environment (which fetches the build-system requirements from the package index).
    proc = run([*command, "--no-index", "--no-build-isolation"], timeout=300)
    if proc.returncode != 0:
        proc = run(command, timeout=300)
    found = sorted(wheels.glob("*.whl"))
    if proc.returncode != 0 or len(found) != 1:
        print(output(proc))
        return False
    site = prefix / SITE
    with zipfile.ZipFile(found[0]) as wheel:
        wheel.extractall(site)
    (entry_points,) = site.glob("*.dist-info/entry_points.txt")
    parser = configparser.ConfigParser()
    parser.read_string(entry_points.read_text())
    for name, target in (
        parser["console_scripts"].items() if parser.has_section("console_scripts") else []
    ):
        module, _, function = target.partition(":")
        script = prefix / "bin" / name
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(
            f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\n"
            f"sys.exit({function}())\n"
        )
        script.chmod(0o755)
    return True


def _run_step(command: str, stage: Image, problems: list[str]) -> None:
    args = shlex.split(command)
    if not args:
        return
    if args[0] in ("groupadd", "useradd"):
        return  # users only exist inside a container; the uid is set by USER and runAsUser
    if args[:2] == ["mkdir", "-p"]:
        for directory in args[2:]:
            stage.host(directory).mkdir(parents=True, exist_ok=True)
        return
    if args[0] == "pip" and "install" in args:
        prefix = next((a.split("=", 1)[1] for a in args if a.startswith("--prefix=")), None)
        target = [a for a in args[2:] if not a.startswith("-")]
        if prefix is None or len(target) != 1 or not target[0].startswith("."):
            problems.append(f"RUN {command}: only `pip install --prefix=DIR .[extras]` is known")
            return
        # The project from the copied context, its dependencies from this environment.
        if not _install_project(stage.host(stage.workdir), stage.host(prefix)):
            problems.append(f"RUN {command}: the project does not build from the context")
        return
    problems.append(f"RUN {command}: unknown step (teach tests/contrib/test_image_layout.py)")


def build_layout(dockerfile: Path, context: Path, into: Path) -> tuple[Image, list[str]]:
    """Execute the Dockerfile's file-system steps into ``into``; the final stage and problems."""
    patterns = dockerignore(context / ".dockerignore")
    stages: dict[str, Image] = {}
    stage = Image(into / "stage-0")
    problems: list[str] = []
    for keyword, args in instructions(dockerfile.read_text()):
        if keyword == "FROM":
            words = args.split()
            stage = Image(into / f"stage-{len(stages)}")
            stage.root.mkdir(parents=True)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages[name] = stage
        elif keyword == "WORKDIR":
            stage.workdir = str(Path(stage.workdir, args))
            stage.host(stage.workdir).mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            words = shlex.split(args)
            if words and "=" not in words[0]:
                stage.env[words[0]] = " ".join(words[1:])
            else:
                stage.env.update(w.split("=", 1) for w in words)  # type: ignore[misc]
        elif keyword in ("ENTRYPOINT", "CMD"):
            value = json.loads(args) if args.startswith("[") else ["/bin/sh", "-c", args]
            if keyword == "ENTRYPOINT":
                stage.entrypoint, stage.cmd = value, []
            else:
                stage.cmd = value
        elif keyword in ("COPY", "ADD"):
            words = shlex.split(args)
            flags = {w.split("=", 1)[0]: w.split("=", 1)[-1] for w in words if w.startswith("--")}
            *sources, dest = [w for w in words if not w.startswith("--")]
            dest_path = dest if dest.startswith("/") else str(Path(stage.workdir, dest))
            to_dir = dest.endswith("/") or len(sources) > 1 or dest in (".", "./")
            for source in sources:
                if "--from" in flags:
                    origin = stages[flags["--from"]].host(source)
                    if not origin.exists():
                        problems.append(f"COPY --from={flags['--from']} {source}: not found")
                        continue
                    _copy(origin, stage.host(dest_path))
                    continue
                files = _context_files(context, source.rstrip("/"), patterns)
                if not files:
                    problems.append(f"{keyword} {source}: not in the build context")
                base = context / source.rstrip("/")
                for path in files:
                    if base.is_dir():
                        target = stage.host(dest_path) / path.relative_to(base)
                    elif to_dir:
                        target = stage.host(dest_path) / path.name
                    else:
                        target = stage.host(dest_path)
                    _copy(path, target)
        elif keyword == "RUN":
            for command in args.split("&&"):
                _run_step(command.strip(), stage, problems)
    return stage, problems


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Image, list[str]]:
    return build_layout(DOCKERFILE, ROOT, tmp_path_factory.mktemp("image"))


@pytest.fixture
def image(built: tuple[Image, list[str]]) -> Image:
    assert built[1] == [], "the Dockerfile does not build: see test_the_dockerfile_builds"
    return built[0]


@pytest.fixture
def layout(image: Image, tmp_path: Path) -> Image:
    """A fresh copy of the image for one container, so that mounts do not leak."""
    root = tmp_path / "root"
    shutil.copytree(image.root, root, symlinks=True)
    return Image(root, image.workdir, dict(image.env), list(image.entrypoint), list(image.cmd))


# --- running a container's command line outside a container -----------------------------------


@dataclass
class Container:
    """What a container runs: command line, environment and mounts over the image."""

    where: str
    args: list[str] | None  # replaces the image's CMD (None: keep it)
    env: dict[str, str]
    mounts: dict[str, dict[str, str] | Path] = field(default_factory=dict)
    command: list[str] | None = None  # replaces ENTRYPOINT, and CMD with it (Kubernetes)

    def argv(self, image: Image) -> list[str]:
        if self.command is not None:
            return [*self.command, *(self.args or [])]
        return [*image.entrypoint, *(self.args if self.args is not None else image.cmd)]


def _listen_args(argv: list[str], listen: str) -> list[str]:
    out = []
    for i, arg in enumerate(argv):
        if i and argv[i - 1] == "--listen":
            out.append(listen)
        elif arg.startswith("--listen="):
            out.append(f"--listen={listen}")
        else:
            out.append(arg)
    return out


def prepare(container: Container, image: Image, listen: str) -> tuple[list[str], dict[str, str]]:
    """Lay the mounts over ``image`` and give the command line and environment that run the
    container's process here; raise AssertionError for a path nothing provides."""
    for target, content in container.mounts.items():
        place = image.host(target)
        if place.exists():
            shutil.rmtree(place)  # a mount hides what the image has there
        if isinstance(content, Path):
            shutil.copytree(content, place)
            continue
        place.mkdir(parents=True)
        for key, text in content.items():
            # ${file:/...} in mounted files reads container paths: point them at the layout.
            (place / key).write_text(text.replace("${file:/", f"${{file:{image.root}/"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    env.update(image.env)
    env.update(container.env)
    # ${file:} reads under /run/secrets by default; here that is the layout's /run/secrets.
    env.setdefault("CREDENTIALS_DIRECTORY", str(image.host("/run/secrets")))
    for key in PATH_VARIABLES:
        if key in env:
            paths = [p for p in env[key].split(":") if p]
            for path in paths:
                assert image.host(path).exists(), (
                    f"{container.where}: {key} names {path}, which neither the image nor a "
                    "mount provides"
                )
            env[key] = ":".join(str(image.host(p)) for p in paths)
    env["PROBED_LISTEN"] = listen
    env["PYTHONPATH"] = str(image.host(f"/usr/local/{SITE}"))
    env["PATH"] = f"{image.host('/usr/local/bin')}:{env.get('PATH', '')}"
    argv = _listen_args(container.argv(image), listen)
    mapped = []
    for arg in argv:
        if arg.startswith("/"):
            assert image.host(arg).exists(), (
                f"{container.where}: {arg} is neither in the image nor mounted"
            )
            mapped.append(str(image.host(arg)))
        else:
            mapped.append(arg)
    executable = shutil.which(mapped[0], path=env["PATH"])
    assert executable and executable.startswith(str(image.root)), (
        f"{container.where}: {mapped[0]} is not installed in the image"
    )
    return [executable, *mapped[1:]], env


def validate(container: Container, image: Image) -> subprocess.CompletedProcess[str]:
    """The container's `probed run ...` as `probed validate ...`."""
    argv, env = prepare(container, image, f"127.0.0.1:{free_port()}")
    assert "run" in argv, f"{container.where}: {argv} does not run probed"
    argv[argv.index("run")] = "validate"
    return subprocess.run(
        argv, cwd=image.host(image.workdir), env=env, capture_output=True, text=True, timeout=60
    )


def _default(image: Image) -> Container:
    return Container("the image's default command", None, {})


# --- (a) the image on its own ------------------------------------------------------------------


def test_the_dockerfile_builds_with_every_copy_source_in_the_build_context(
    built: tuple[Image, list[str]],
) -> None:
    assert built[1] == []
    assert built[0].host("/etc/probed/plugins/file_age.py").is_file()


def test_the_image_runs_its_own_copy_of_probed(layout: Image) -> None:
    """The layout's package (with its package data), not this checkout, is what runs."""
    argv, env = prepare(_default(layout), layout, "127.0.0.1:1")
    proc = subprocess.run(
        [sys.executable, "-c", "import probed; print(probed.__file__)"],
        cwd=layout.root, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert proc.stdout.startswith(str(layout.root)), proc.stdout
    assert Path(argv[0]).is_relative_to(layout.root)


def test_default_command_loads_with_no_config_errors(layout: Image) -> None:
    proc = validate(_default(layout), layout)
    assert proc.returncode == 0, output(proc)
    assert f"configuration valid: {len(EMBEDDED_CHECKS)} check(s)" in proc.stdout, output(proc)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health/live", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def test_default_command_serves_the_embedded_host_checks(layout: Image, tmp_path: Path) -> None:
    """What the README promises for `docker run IMAGE`: the embedded host-* checks."""
    port = free_port()
    argv, env = prepare(_default(layout), layout, f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "probed.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            argv, cwd=layout.host(layout.workdir), env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            wait_until(lambda: proc.poll() is not None or _alive(url), 30, "/health/live")
            assert proc.poll() is None, log.read_text()
            answer = _get(url + "/api/v1/checks")
            assert answer["config_errors"] == []
            assert {c["name"] for c in answer["checks"]} == EMBEDDED_CHECKS
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=20)
    assert code == 0, log.read_text()


def documented_docker_runs(text: str) -> Iterator[list[str]]:
    """`docker run ...` commands of a text (comment markers and continuations removed)."""
    lines = [re.sub(r"^\s*#\s?", "", line) for line in text.splitlines()]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    for line in joined.splitlines():
        if "docker run " in line:
            yield shlex.split(line[line.index("docker run ") :], comments=True)


def _is_probed_image(name: str) -> bool:
    return name.split(":")[0].rsplit("/", 1)[-1] == "probed"


_VALUE_FLAGS: Final = {
    "-v", "--volume", "-e", "--env", "--env-file", "-p", "--publish", "--name", "--network",
    "-u", "--user", "--mount", "--tmpfs", "-w", "--workdir", "--entrypoint", "--sysctl",
    "--cap-drop", "--cap-add", "--security-opt", "-h", "--hostname",
}  # fmt: skip


def docker_run_container(words: list[str], cwd: Path) -> Container:
    """A `docker run` command line as a Container (bind mounts, env, image, then args)."""
    env: dict[str, str] = {}
    mounts: dict[str, dict[str, str] | Path] = {}
    entrypoint = None
    i = 2
    while words[i].startswith("-"):
        flag, inline, value = words[i].partition("=")
        if not inline and flag in _VALUE_FLAGS:
            value = words[i + 1]
            i += 1
        i += 1
        if flag in ("-v", "--volume"):
            source, target = value.split(":")[:2]
            source = re.sub(r"^(\$PWD|\$\{PWD\}|\$\(pwd\))/?", "", source)
            mounts[target] = cwd / source
        elif flag == "--tmpfs":
            mounts[value.split(":")[0]] = {}
        elif flag in ("-e", "--env"):
            key, _, val = value.partition("=")
            env[key] = val
        elif flag == "--env-file":
            for line in (cwd / value).read_text().splitlines():
                if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                    key, _, val = line.partition("=")
                    env[key.strip()] = val.strip()
        elif flag == "--entrypoint":
            entrypoint = [value]
    image_name, args = words[i], words[i + 1 :]
    return Container(f"docker run {image_name}", args or None, env, mounts, entrypoint)


def _doc_files() -> list[Path]:
    """The Dockerfile's header and every Markdown doc: README, docs/, contrib/."""
    found = [DOCKERFILE, ROOT / "README.md", *sorted(ROOT.glob("docs/**/*.md"))]
    found += [p for p in sorted(CONTRIB.rglob("*.md")) if "node_modules" not in p.parts]
    return [p for p in found if p.is_file()]


def documented_probed_runs() -> list[tuple[str, list[str]]]:
    """(file, words) of every documented `docker run` of the probed image."""
    runs = []
    for path in _doc_files():
        for words in documented_docker_runs(path.read_text()):
            container = docker_run_container(words, ROOT)
            if _is_probed_image(container.where.removeprefix("docker run ")):
                runs.append((str(path.relative_to(ROOT)), words))
    return runs


def test_documented_docker_run_with_the_repository_checks_loads(layout: Image) -> None:
    """The Dockerfile header's `docker run` mounting checks.d: file_age checks included."""
    (words,) = list(documented_docker_runs(DOCKERFILE.read_text()))
    container = docker_run_container(words, ROOT)
    assert any(Path(p) == ROOT / "checks.d" for p in container.mounts.values())
    proc = validate(container, layout)
    assert proc.returncode == 0, output(proc)


@pytest.mark.parametrize(
    "words", [w for _, w in documented_probed_runs()], ids=[f for f, _ in documented_probed_runs()]
)
def test_every_documented_docker_run_of_the_image_loads(words: list[str], layout: Image) -> None:
    """Each `docker run IMAGE ...` in the docs, run against the image layout, loads cleanly."""
    proc = validate(docker_run_container(words, ROOT), layout)
    assert proc.returncode == 0, f"{shlex.join(words)}\n{output(proc)}"


def test_the_image_the_manifests_run_is_built_and_pushed_by_the_docs() -> None:
    """Kubernetes pulls the manifests' image from a registry: a doc must build and push it."""
    docs = "\n".join(
        p.read_text()
        for p in [DOCKERFILE, ROOT / "README.md", *CONTRIB.rglob("*.md"), *ROOT.glob("docs/*.md")]
        if "node_modules" not in p.parts and p.is_file()
    )
    images = {c.where.split(" image ")[-1] for c in _kubernetes_containers()}
    assert images
    for name in images:
        assert f"docker build -t {name} ." in docs, f"no doc builds {name}"
        assert f"docker push {name}" in docs, f"no doc pushes {name}"


ENV_FILES: Final = tuple(sorted((CONTRIB / "environments").glob("*.env")))


@pytest.mark.parametrize("env_file", ENV_FILES, ids=[p.name for p in ENV_FILES])
def test_the_environment_files_work_with_the_image(env_file: Path, layout: Image) -> None:
    """contrib/environments/*.env "work unchanged with docker run --env-file": with the
    repository's checks.d mounted where they point PROBED_CHECKS_DIR, the checks load."""
    words = ["docker", "run", "--env-file", str(env_file.relative_to(ROOT)), "probed:x"]
    container = docker_run_container(words, ROOT)
    container.mounts[container.env["PROBED_CHECKS_DIR"]] = ROOT / "checks.d"
    proc = validate(container, layout)
    assert proc.returncode == 0, output(proc)
    assert "configuration valid" in proc.stdout


# --- (b) every container of contrib that runs the image ----------------------------------------


def _k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted((CONTRIB / "kubernetes").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "kind" in doc:
                found.append((path, doc))
    return found


def _kubernetes_containers() -> list[Container]:
    objects = _k8s_objects()
    examples = CONTRIB / "kubernetes" / "examples"

    def find(kind: str, name: str, folder: Path) -> dict[str, Any]:
        same = [d for p, d in objects if p.parent == folder]
        provided = [d for p, d in objects if p.parent == examples]  # the user-provided ones
        for doc in [*same, *provided]:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
        raise AssertionError(f"{folder.name}: no {kind} {name}")

    containers = []
    for path, doc in objects:
        if doc["kind"] not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        pod = doc["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for spec in pod["containers"]:
            if not _is_probed_image(spec["image"]):
                continue
            mounts: dict[str, dict[str, str] | Path] = {}
            for mount in spec.get("volumeMounts", []):
                volume = volumes[mount["name"]]
                if "configMap" in volume:
                    data = find("ConfigMap", volume["configMap"]["name"], path.parent)["data"]
                elif "secret" in volume:
                    secret = find("Secret", volume["secret"]["secretName"], path.parent)
                    data = dict(secret.get("stringData") or {})
                else:
                    data = {}  # emptyDir
                mounts[mount["mountPath"]] = {k: str(v) for k, v in data.items()}
            env = {e["name"]: str(e["value"]) for e in spec.get("env", []) if "value" in e}
            command, args = spec.get("command"), spec.get("args")
            where = f"{path.relative_to(ROOT)} {doc['kind']}/{doc['metadata']['name']} "
            containers.append(Container(f"{where}container {spec['name']} image {spec['image']}",
                                        args, env, mounts, command))  # fmt: skip
    return containers


def _compose_containers() -> list[Container]:
    compose_dir = CONTRIB / "compose"
    compose = yaml.safe_load((compose_dir / "compose.yaml").read_text())
    containers = []
    for name, service in compose["services"].items():
        build = service.get("build") or {}
        dockerfile = compose_dir / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        if not build or dockerfile.resolve() != DOCKERFILE:
            continue
        mounts: dict[str, dict[str, str] | Path] = {}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            mounts[target] = (compose_dir / source).resolve()
        for target in service.get("tmpfs", []):
            mounts[target] = {}
        args = service.get("command")
        args = shlex.split(args) if isinstance(args, str) else args
        entrypoint = service.get("entrypoint")
        entrypoint = shlex.split(entrypoint) if isinstance(entrypoint, str) else entrypoint
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        containers.append(Container(f"compose service {name}", args, env, mounts, entrypoint))
    return containers


def _all_containers() -> list[Container]:
    return [*_kubernetes_containers(), *_compose_containers()]


def test_contrib_has_containers_running_the_image() -> None:
    wheres = [c.where for c in _all_containers()]
    assert any("Deployment/shop" in w for w in wheres), wheres
    assert any("Deployment/probed" in w for w in wheres), wheres
    assert any(w.startswith("compose service probed") for w in wheres), wheres


@pytest.mark.parametrize("container", _all_containers(), ids=lambda c: c.where.split(" image")[0])
def test_every_container_of_contrib_loads_its_checks_in_the_image(
    container: Container, layout: Image
) -> None:
    proc = validate(container, layout)
    assert proc.returncode == 0, f"{container.where}\n{output(proc)}"
    assert "configuration valid" in proc.stdout


# --- negative controls ---------------------------------------------------------------------


def _old_style_dockerfile(tmp_path: Path) -> Path:
    """The Dockerfile as it was: host.yaml baked in and named by PROBED_CHECKS_DIR, no plugin."""
    text = DOCKERFILE.read_text()
    for old, new in (
        (
            "COPY plugins/file_age.py /etc/probed/plugins/file_age.py\n",
            "COPY checks.d/host.yaml /etc/probed/checks.d/host.yaml\n",
        ),
        (
            "ENV PROBED_PLUGINS_DIR=/etc/probed/plugins",
            "ENV PROBED_CHECKS_DIR=/etc/probed/checks.d \\\n"
            "    PROBED_PLUGINS_DIR=/etc/probed/plugins",
        ),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return path


def test_an_image_running_other_checks_than_documented_is_caught(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md", "probed", "plugins", "checks.d"):
        _copy(ROOT / name, context / name)
    (context / ".dockerignore").write_text("**/__pycache__\n")
    old, problems = build_layout(_old_style_dockerfile(tmp_path), context, tmp_path / "layout")
    assert problems == []
    proc = validate(_default(old), old)
    assert proc.returncode == 0, output(proc)
    assert f"configuration valid: {len(EMBEDDED_CHECKS)} check(s)" not in proc.stdout
    (words,) = list(documented_docker_runs(DOCKERFILE.read_text()))
    proc = validate(docker_run_container(words, ROOT), old)
    assert proc.returncode == 1 and "file_age" in proc.stderr, output(proc)


def test_a_copy_source_left_out_of_the_build_context_is_caught(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md", "probed", "plugins", ".dockerignore"):
        _copy(ROOT / name, context / name)
    ignore = context / ".dockerignore"
    ignore.write_text(ignore.read_text().replace("!plugins/file_age.py\n", ""))
    _, problems = build_layout(DOCKERFILE, context, tmp_path / "layout")
    assert problems == ["COPY plugins/file_age.py: not in the build context"]


def test_a_container_naming_a_path_nothing_provides_is_caught(layout: Image) -> None:
    container = Container("broken", ["run", "--checks-dir", "/etc/probed/conf.d"], {})
    with pytest.raises(
        AssertionError, match=re.escape("/etc/probed/conf.d is neither in the image")
    ):
        validate(container, layout)


def test_dockerignore_follows_dockers_last_match_rule() -> None:
    patterns = dockerignore(ROOT / ".dockerignore")
    assert in_context("probed/cli.py", patterns)
    assert in_context("plugins/file_age.py", patterns)
    assert not in_context("plugins/example_hooks.py", patterns)
    assert not in_context("probed/__pycache__/cli.cpython-311.pyc", patterns)
    assert not in_context("contrib/tools/node_modules/x/package.json", patterns)
    assert not in_context(".git/config", patterns)
