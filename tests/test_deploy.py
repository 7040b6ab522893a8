"""The production shape: docker-compose.yml is valid Compose, settings pass `check --deploy`,
the lockfiles agree with pyproject.toml."""

import json
import os
import re
import secrets
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml
from cryptography.fernet import Fernet
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = Path(__file__).resolve().parent / "fixtures" / "compose-spec.json"
SETTINGS = ROOT / "console" / "settings.py"


def load_compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def settings_variables():
    """Every environment variable console/settings.py reads, in the order it reads them."""
    text = SETTINGS.read_text()
    pattern = r'(?:env_(?:str|bool|int|list)|os\.environ\.get)\(\s*"([A-Z][A-Z0-9_]*)"'
    return list(dict.fromkeys(re.findall(pattern, text)))


def env_without_settings_variables(tmp_path, **values):
    """os.environ minus everything settings.py reads (tests set some), plus the given values."""
    # DJANGO_ALLOW_ASYNC_UNSAFE is set by the browser tests' conftest; production never has it.
    dropped = {*settings_variables(), "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({"KILN_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "console.settings"})
    env.update(values)
    return env


def manage(*args, env):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_file_follows_the_compose_specification():
    schema = json.loads(SCHEMA.read_text())
    # The schema names draft-07 by a URL jsonschema does not recognise, so pick draft-07 here.
    jsonschema.Draft7Validator(schema).validate(load_compose())


def test_compose_runs_the_production_shape_with_healthchecks_and_a_database_volume():
    compose = load_compose()
    services = compose["services"]
    assert set(services) >= {"postgres", "redis", "web", "worker", "beat"}
    for name in ("postgres", "redis", "web"):
        assert services[name]["healthcheck"]["test"], name
    postgres_volumes = [v.split(":")[0] for v in services["postgres"]["volumes"]]
    assert set(postgres_volumes) & set(compose["volumes"])
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_env_example_lists_every_variable_settings_reads():
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    missing = [name for name in settings_variables() if name not in listed]
    assert not missing, f".env.example does not list {missing}"
    assert len(settings_variables()) > 20


def test_readme_documents_every_variable_settings_reads():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in settings_variables() if f"`{name}`" not in readme]
    assert not missing, f"README.md does not document {missing}"


def test_production_settings_pass_check_deploy(tmp_path):
    env = env_without_settings_variables(
        tmp_path,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="kiln.example.com",
        KILN_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_weak_secret_key_fails_check_deploy(tmp_path):
    """The guard above is real: Django's own deploy checks run and can fail this command."""
    env = env_without_settings_variables(
        tmp_path,
        DEBUG="false",
        SECRET_KEY="short",
        ALLOWED_HOSTS="kiln.example.com",
        KILN_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
    )
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "security.W009" in result.stderr


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("", "KILN_ENCRYPTION_KEYS is not set"),
        ("not-a-fernet-key", "KILN_ENCRYPTION_KEYS key #1 is not a Fernet key"),
    ],
)
def test_missing_or_malformed_encryption_keys_fail_check(tmp_path, keys, message):
    env = env_without_settings_variables(
        tmp_path, SECRET_KEY=secrets.token_urlsafe(50), KILN_ENCRYPTION_KEYS=keys
    )
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "kiln.E001" in result.stderr
    assert message in result.stderr


def test_the_database_pool_is_turned_on_for_postgresql(tmp_path):
    env = env_without_settings_variables(
        tmp_path,
        SECRET_KEY="x" * 50,
        KILN_ENCRYPTION_KEYS="P6NlQVHnqIrfry7iefUHF0_9BT7UmBOH83y16LLIYss=",
        DATABASE_URL="postgres://kiln@db.invalid:5432/kiln",
        DATABASE_POOL="true",
        DATABASE_CONN_MAX_AGE="60",
    )
    shown = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; d = settings.DATABASES['default'];"
        "print(d['OPTIONS']['pool']['max_size'], d['CONN_MAX_AGE'])",
        env=env,
    )
    assert shown.stdout.split() == ["10", "0"], shown.stderr


# requirements.lock (production, bin/dev) and requirements-test.lock (bin/test, CI), both
# written by bin/lock from pyproject.toml: each lock and the extras it covers.
LOCKS = {"requirements.lock": (), "requirements-test.lock": ("test",)}
PYPROJECT_VIA = "kiln (pyproject.toml)"


def parse_lock(text):
    """{name: (version, hashes, via)} from uv's `pip compile --generate-hashes` output."""
    locked, name = {}, None
    for line in text.splitlines():
        pin = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if pin:
            name = canonicalize_name(pin.group(1))
            locked[name] = (Version(pin.group(2)), [], [])
        elif name and (hashed := re.match(r"\s+--hash=(\S+)", line)):
            locked[name][1].append(hashed.group(1))
        elif name and (via := re.match(r"\s+#\s+(?:via\s+)?(\S.*)", line)):
            if via.group(1) != "via":
                locked[name][2].append(via.group(1).strip())
    return locked


def lock_problems(pyproject_text, lock_text, extras):
    """Every way a lock disagrees with pyproject.toml's dependencies (plus the extras)."""
    project = tomllib.loads(pyproject_text)["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    locked = parse_lock(lock_text)
    problems, names = [], set()
    for requirement in map(Requirement, wanted):
        if requirement.marker and not requirement.marker.evaluate({"python_version": "3.11"}):
            continue
        name = canonicalize_name(requirement.name)
        names.add(name)
        if name not in locked:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(locked[name][0], prereleases=True):
            problems.append(f"{requirement} is locked at {locked[name][0]}")
    for name, (version, hashes, via) in locked.items():
        if PYPROJECT_VIA in via and name not in names:
            problems.append(f"{name}=={version} is locked for a requirement pyproject.toml dropped")
        if not hashes:
            problems.append(f"{name}=={version} has no hash (pip --require-hashes refuses it)")
    return problems


@pytest.mark.parametrize(("lock", "extras"), LOCKS.items())
def test_the_lock_pins_what_pyproject_requires(lock, extras):
    problems = lock_problems(
        (ROOT / "pyproject.toml").read_text(), (ROOT / lock).read_text(), extras
    )
    assert not problems, f"{lock} is out of date (run bin/lock): {problems}"


def test_a_lock_that_disagrees_with_pyproject_is_caught():
    """The check above can fail: a range the pin misses, a missing pin, a dropped dependency."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    lock = (ROOT / "requirements.lock").read_text()
    assert lock_problems(pyproject, lock, ()) == []
    django = re.search(r'"Django[^"]*"', pyproject).group(0)

    narrowed = pyproject.replace(django, '"Django>=99"')
    assert any("is locked at" in p for p in lock_problems(narrowed, lock, ()))
    added = pyproject.replace(django, f'{django}, "not-a-kiln-dependency>=1"')
    assert lock_problems(added, lock, ()) == ["not-a-kiln-dependency>=1 is not in the lock"]
    dropped = pyproject.replace(f"{django},", "")
    assert lock_problems(dropped, lock, ()) == [
        f"django=={parse_lock(lock)['django'][0]} is locked for a requirement pyproject.toml dropped"
    ]
    assert lock_problems(pyproject, lock, ("test",))  # the test extra is not in this lock


def test_production_runs_the_versions_the_tests_ran():
    production = parse_lock((ROOT / "requirements.lock").read_text())
    tested = parse_lock((ROOT / "requirements-test.lock").read_text())
    differ = {
        name: (pin[0], tested.get(name, (None,))[0])
        for name, pin in production.items()
        if name not in tested or tested[name][:2] != pin[:2]
    }
    assert not differ, (
        f"requirements.lock differs from requirements-test.lock (run bin/lock): {differ}"
    )
    assert "pytest" not in production


def test_the_image_installs_the_lock_with_hashes_checked():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock ./" in dockerfile
    assert "RUN pip install --require-hashes -r requirements.lock" in dockerfile


def test_the_readme_architecture_tree_names_every_module_of_integrations():
    """The tree in README's Architecture section is the tree on disk: a module added, moved or
    removed without the README saying so fails here."""
    readme = (ROOT / "README.md").read_text()
    tree = readme.split("## Architecture", 1)[1].split("```")[1]
    named, package = set(), ""
    for line in tree.splitlines():
        if not line.startswith("  "):  # console/, integrations/, demo/: the top level
            continue
        if not line.startswith("   "):  # an entry of integrations/; deeper lines continue it
            head = line.split()[0]
            package = head.rstrip("/") + "/" if head.endswith("/") else ""
        named.update(package + name for name in re.findall(r"[a-z_]+\.py", line))
    on_disk = {
        path.relative_to(ROOT / "integrations").as_posix()
        for path in (ROOT / "integrations").rglob("*.py")
        if path.name not in ("__init__.py", "apps.py")
        and path.relative_to(ROOT / "integrations").parts[0] not in ("migrations", "management")
    }
    assert named == on_disk


def test_the_production_image_leaves_out_the_demo_and_the_harness():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = [line.split()[-2] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert not {"demo", "harness"} & {c.rstrip("/") for c in copied}, copied
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "demo" in ignored and "harness" in ignored
