"""The Terraform modules, run for real: fmt, init against a local provider mirror, validate,
apply and destroy of aws-cluster against a moto server, and the platform's Kubernetes objects
validated against the official Kubernetes schema."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.moto import moto_server
from tests.support.paths import REPO

TERRAFORM_DIR = REPO / "terraform"
PRICING_FILE = REPO / "app" / "costs" / "default_pricing.toml"
KUBERNETES_VERSION = "1.33"

# Where a provider mirror is looked for when OPPEN_TF_PROVIDER_MIRROR does not name one.
MIRROR_CANDIDATES = [
    Path("/opt/tf-plugins"),
    Path.home() / ".terraform.d" / "plugins",
    Path.home() / ".local" / "share" / "terraform" / "plugins",
    Path("/usr/local/share/terraform/plugins"),
    Path("/usr/share/terraform/plugins"),
]

MODULES = {
    "modules/network": ["aws"],
    "modules/aws-cluster": ["aws"],
    "modules/k8s-platform/manifests": [],
    "modules/k8s-platform": ["kubernetes"],
    "environments/dev": ["aws", "kubernetes"],
}


def _find_mirror() -> Path | None:
    named = os.environ.get("OPPEN_TF_PROVIDER_MIRROR")
    candidates = [Path(named)] if named else MIRROR_CANDIDATES
    for path in candidates:
        if (path / "registry.terraform.io" / "hashicorp").is_dir():
            return path
    return None


def _mirrored(mirror: Path | None, provider: str) -> bool:
    return mirror is not None and (mirror / "registry.terraform.io" / "hashicorp" / provider).is_dir()


@pytest.fixture(scope="module")
def terraform() -> str:
    path = shutil.which("terraform")
    if path is None:
        pytest.skip("terraform is not on PATH; install Terraform >= 1.5 to run the IaC tests")
    return path


@pytest.fixture(scope="module")
def tf_env(terraform: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for terraform: a CLI config that installs providers only from the local
    mirror (never the network), no update checks, no prompts."""
    mirror = _find_mirror()
    config = tmp_path_factory.mktemp("tfcli") / "terraform.rc"
    if mirror is None:
        body = "provider_installation {\n  filesystem_mirror {\n    path = \"/nonexistent\"\n  }\n}\n"
    else:
        body = (
            "provider_installation {\n"
            f"  filesystem_mirror {{\n    path    = \"{mirror}\"\n"
            '    include = ["registry.terraform.io/*/*"]\n  }\n}\n'
        )
    config.write_text(body + "disable_checkpoint = true\n")
    env = dict(os.environ)
    env.update(TF_CLI_CONFIG_FILE=str(config), CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1",
               TF_INPUT="0")
    env["OPPEN_TF_MIRROR_FOUND"] = str(mirror or "")
    return env


def _tf(env: dict[str, str], cwd: Path, *args: str, timeout: float = 600) -> str:
    result = subprocess.run(["terraform", *args, "-no-color"], cwd=cwd, env=env, text=True,
                            capture_output=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"terraform {' '.join(args)} failed in {cwd}:\n{result.stderr}\n"
                             f"{result.stdout[-3000:]}")
    return result.stdout


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of terraform/ (and the pricing file the dev environment reads) to run in, so
    no .terraform folder or state lands in the repository."""
    shutil.copytree(TERRAFORM_DIR, tmp_path / "terraform",
                    ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"))
    (tmp_path / "app" / "costs").mkdir(parents=True)
    shutil.copy(PRICING_FILE, tmp_path / "app" / "costs")
    return tmp_path / "terraform"


def test_fmt_is_clean(terraform: str, tf_env: dict[str, str]) -> None:
    result = subprocess.run(["terraform", "fmt", "-check", "-recursive", "-diff", "-no-color"],
                            cwd=TERRAFORM_DIR, env=tf_env, text=True, capture_output=True)
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}"


def test_every_module_follows_the_layout_and_describes_its_interface() -> None:
    for module in MODULES:
        folder = TERRAFORM_DIR / module
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
            assert (folder / name).is_file(), f"{module} lacks {name}"
        variables = (folder / "variables.tf").read_text()
        for block in re.split(r'\n(?=variable ")', variables):
            if not block.strip().startswith("variable"):
                continue
            name = re.match(r'\s*variable "([^"]+)"', block).group(1)
            assert re.search(r"\n\s+description\s+=", block), f"{module}: {name} has no description"
            assert re.search(r"\n\s+type\s+=", block), f"{module}: {name} has no type"
        outputs = (folder / "outputs.tf").read_text()
        for block in re.split(r'\n(?=output ")', outputs):
            if block.strip().startswith("output"):
                name = re.match(r'\s*output "([^"]+)"', block).group(1)
                assert "description" in block, f"{module}: output {name} has no description"


@pytest.mark.parametrize("module", list(MODULES))
def test_init_and_validate(module: str, tf_env: dict[str, str], workdir: Path) -> None:
    mirror = Path(tf_env["OPPEN_TF_MIRROR_FOUND"]) if tf_env["OPPEN_TF_MIRROR_FOUND"] else None
    missing = [p for p in MODULES[module] if not _mirrored(mirror, p)]
    if missing:
        pytest.skip(f"provider hashicorp/{', '.join(missing)} is not in the local mirror "
                    f"({mirror}); this machine cannot download providers")
    folder = workdir / module
    _tf(tf_env, folder, "init", "-backend=false", "-input=false")
    out = _tf(tf_env, folder, "validate")
    assert "Success" in out


# --- aws-cluster against moto ------------------------------------------------------------


@pytest.fixture
def moto_endpoint(tmp_path: Path) -> Iterator[str]:
    """A moto server with AWS-managed IAM policies loaded (the modules attach them)."""
    with moto_server(tmp_path / "moto.log", MOTO_IAM_LOAD_MANAGED_POLICIES="true") as url:
        yield url


MOTO_ROOT = """
provider "aws" {{
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  endpoints {{
    ec2 = "{url}"
    eks = "{url}"
    iam = "{url}"
    s3  = "{url}"
    rds = "{url}"
    ecr = "{url}"
    sts = "{url}"
  }}
}}

module "network" {{
  source = "../modules/network"

  name               = "oppen-test"
  cluster_name       = "oppen-test"
  availability_zones = ["us-east-1a", "us-east-1b"]
}}

module "cluster" {{
  source = "../modules/aws-cluster"

  name                          = "oppen-test"
  vpc_id                        = module.network.vpc_id
  public_subnet_ids             = module.network.public_subnet_ids
  private_subnet_ids            = module.network.private_subnet_ids
  private_subnet_cidrs          = module.network.private_subnet_cidrs
  kubernetes_version            = "1.31"
  db_password                   = "correct-horse-battery-staple"
  db_instance_class             = "db.t4g.small"
  db_deletion_protection        = false
  db_skip_final_snapshot        = true
  artifact_bucket_force_destroy = true
  node_groups = {{
    gpu = {{
      pool           = "gpu-training"
      gpu            = true
      instance_types = ["g5.xlarge"]
      min_size       = 0
      max_size       = 2
      desired_size   = 1
      capacity_type  = "SPOT"
    }}
  }}
}}

output "cluster" {{
  value = module.cluster
}}

output "network" {{
  value = module.network
}}
"""


def _aws(service: str, url: str):
    import boto3

    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.mark.slow
def test_aws_cluster_apply_and_destroy_against_moto(tf_env: dict[str, str], workdir: Path,
                                                    moto_endpoint: str) -> None:
    mirror = tf_env["OPPEN_TF_MIRROR_FOUND"]
    if not _mirrored(Path(mirror) if mirror else None, "aws"):
        pytest.skip("provider hashicorp/aws is not in a local mirror; it cannot be downloaded here")
    root = workdir / "moto-root"
    root.mkdir()
    (root / "main.tf").write_text(MOTO_ROOT.format(url=moto_endpoint))
    _tf(tf_env, root, "init", "-input=false")
    _tf(tf_env, root, "apply", "-auto-approve", "-input=false")
    outputs = json.loads(_tf(tf_env, root, "output", "-json"))
    # The network is its own module, wired into the cluster by the caller.
    out = {**outputs["network"]["value"], **outputs["cluster"]["value"]}

    ec2, eks = _aws("ec2", moto_endpoint), _aws("eks", moto_endpoint)
    vpc = ec2.describe_vpcs(VpcIds=[out["vpc_id"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.40.0.0/16"
    subnets = ec2.describe_subnets(SubnetIds=out["public_subnet_ids"] + out["private_subnet_ids"])
    zones = {s["SubnetId"]: s["AvailabilityZone"] for s in subnets["Subnets"]}
    assert {zones[s] for s in out["public_subnet_ids"]} == {"us-east-1a", "us-east-1b"}
    assert {zones[s] for s in out["private_subnet_ids"]} == {"us-east-1a", "us-east-1b"}
    public = [s for s in subnets["Subnets"] if s["SubnetId"] in out["public_subnet_ids"]]
    assert all(s["MapPublicIpOnLaunch"] for s in public)
    assert len(ec2.describe_nat_gateways(
        Filters=[{"Name": "vpc-id", "Values": [out["vpc_id"]]}])["NatGateways"]) == 1

    cluster = eks.describe_cluster(name="oppen-test")["cluster"]
    assert cluster["version"] == "1.31"
    assert cluster["roleArn"].endswith(":role/oppen-test-cluster")
    assert set(cluster["resourcesVpcConfig"]["subnetIds"]) == set(
        out["public_subnet_ids"] + out["private_subnet_ids"])
    groups = {name: eks.describe_nodegroup(clusterName="oppen-test", nodegroupName=name)["nodegroup"]
              for name in eks.list_nodegroups(clusterName="oppen-test")["nodegroups"]}
    assert set(groups) == {"oppen-test-system", "oppen-test-cpu", "oppen-test-cpu-spot",
                           "oppen-test-gpu"}
    gpu = groups["oppen-test-gpu"]
    assert gpu["capacityType"] == "SPOT"
    assert gpu["instanceTypes"] == ["g5.xlarge"]
    spot_taint = {"key": "oppen.dev/spot", "value": "true", "effect": "NO_SCHEDULE"}
    assert gpu["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"},
                             spot_taint]
    cpu_spot = groups["oppen-test-cpu-spot"]
    assert cpu_spot["capacityType"] == "SPOT" and cpu_spot["taints"] == [spot_taint]
    assert cpu_spot["labels"]["oppen.dev/capacity-type"] == "spot"
    assert gpu["labels"]["oppen.dev/pool"] == "gpu-training"
    assert gpu["labels"]["nvidia.com/gpu.present"] == "true"
    assert gpu["amiType"] == "AL2023_x86_64_NVIDIA"  # a gpu group's default AMI
    assert gpu["scalingConfig"] == {"minSize": 0, "maxSize": 2, "desiredSize": 1}
    assert set(gpu["subnets"]) == set(out["private_subnet_ids"])
    assert groups["oppen-test-cpu"]["capacityType"] == "ON_DEMAND"
    assert "taints" not in groups["oppen-test-system"] or not groups["oppen-test-system"]["taints"]

    s3 = _aws("s3", moto_endpoint)
    bucket = out["artifact_bucket_name"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block[k] for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                  "RestrictPublicBuckets"))

    db = _aws("rds", moto_endpoint).describe_db_instances(
        DBInstanceIdentifier="oppen-test-postgres")["DBInstances"][0]
    assert db["Engine"] == "postgres"
    assert db["DBInstanceClass"] == "db.t4g.small"
    assert db["StorageEncrypted"] is True
    assert db["PubliclyAccessible"] is False
    assert {s["SubnetIdentifier"] for s in db["DBSubnetGroup"]["Subnets"]} == set(
        out["private_subnet_ids"])

    repo = _aws("ecr", moto_endpoint).describe_repositories(repositoryNames=["oppen"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True

    iam = _aws("iam", moto_endpoint)
    for account in ("dispatcher", "training"):  # each role trusts its own account only
        trust = iam.get_role(RoleName=f"oppen-test-{account}")["Role"]["AssumeRolePolicyDocument"]
        if isinstance(trust, str):
            trust = json.loads(trust)
        assert f"system:serviceaccount:oppen:oppen-{account}" in \
            trust["Statement"][0]["Condition"]["StringEquals"].values()
    assert out["checkpoint_uri"] == f"s3://{out['artifact_bucket_name']}/checkpoints"
    attached = iam.list_attached_role_policies(RoleName="oppen-test-node")["AttachedPolicies"]
    assert {p["PolicyName"] for p in attached} == {
        "AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"}

    _tf(tf_env, root, "destroy", "-auto-approve", "-input=false")
    assert eks.list_clusters()["clusters"] == []
    assert _aws("rds", moto_endpoint).describe_db_instances()["DBInstances"] == []
    assert bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["oppen-test"]}])["Vpcs"] == []


# --- k8s-platform objects ------------------------------------------------------------------


@pytest.fixture
def platform_objects(terraform: str, tf_env: dict[str, str], workdir: Path) -> dict[str, dict]:
    """Applies the provider-free manifests module and returns every object by kind/name."""
    folder = workdir / "modules" / "k8s-platform" / "manifests"
    (folder / "test.auto.tfvars.json").write_text(json.dumps({
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/oppen:0.1.0",
        "dispatcher_role_arn": "arn:aws:iam::123456789012:role/oppen-dev-dispatcher",
        "database_url": "postgresql+psycopg://oppen:secret@db.internal:5432/oppen",
        "mlflow_backend_store_uri": "postgresql://oppen:secret@db.internal:5432/mlflow",
        "mlflow_artifact_root": "s3://oppen-dev-artifacts/mlflow",
        "aws_region": "us-east-1",
        "pricing_toml": PRICING_FILE.read_text(),
        "training_role_arn": "arn:aws:iam::123456789012:role/oppen-dev-training",
        "training_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/oppen:0.1.0-train",
        "checkpoint_uri": "s3://oppen-dev-artifacts/checkpoints",
        "kueue": {"teams": ["default", "research"],
                  "on_demand": {"cpu": "32", "memory": "128Gi", "gpus": 4},
                  "spot": {"cpu": "64", "memory": "256Gi", "gpus": 8}},
    }))
    _tf(tf_env, folder, "init", "-input=false")
    _tf(tf_env, folder, "apply", "-auto-approve", "-input=false")
    outputs = json.loads(_tf(tf_env, folder, "output", "-json"))
    objects = {"Namespace/oppen": yaml.safe_load(outputs["namespace"]["value"])}
    for key in ("cluster_scoped", "namespaced", "kueue"):
        objects.update({k: yaml.safe_load(v) for k, v in outputs[key]["value"].items()})
    return objects


def _without_the_apply(folder: Path) -> None:
    """The k8s-platform wrapper minus its kubernetes_manifest resources and provider (which
    cannot be installed here): what is left is its own logic, passing settings through."""
    main = (folder / "main.tf").read_text()
    (folder / "main.tf").write_text(re.sub(r'resource "kubernetes_manifest".*?\n}\n', "", main,
                                           flags=re.S))
    (folder / "versions.tf").write_text('terraform {\n  required_version = ">= 1.5.0"\n}\n')


def test_platform_wrapper_passes_one_settings_object_to_the_manifests(
        terraform: str, tf_env: dict[str, str], workdir: Path) -> None:
    """The wrapper declares one variable, `platform`, not a copy of the submodule's: given
    settings reach ./manifests, omitted ones take its defaults, an unknown one is refused."""
    folder = workdir / "modules" / "k8s-platform"
    _without_the_apply(folder)
    assert 'resource "kubernetes_manifest"' not in (folder / "main.tf").read_text()
    settings = {"image": "registry.example/oppen:1", "namespace": "ml-sched",
                "database_url": "postgresql+psycopg://o:p@db:5432/oppen",
                "mlflow_backend_store_uri": "postgresql://o:p@db:5432/mlflow",
                "mlflow_artifact_root": "s3://bucket/mlflow", "pricing_toml": "x = 1"}
    (folder / "test.auto.tfvars.json").write_text(json.dumps({"platform": settings}))
    _tf(tf_env, folder, "init", "-input=false")
    _tf(tf_env, folder, "apply", "-auto-approve", "-input=false")
    out = {k: v["value"] for k, v in json.loads(_tf(tf_env, folder, "output", "-json")).items()}
    assert out["namespace"] == "ml-sched"
    assert out["mlflow_tracking_uri"] == "http://oppen-mlflow.ml-sched.svc:5000"
    assert out["dispatcher_service_account"] == "oppen-dispatcher"  # the submodule's default
    (folder / "test.auto.tfvars.json").write_text(json.dumps({"platform": {**settings,
                                                                           "colour": "red"}}))
    refused = subprocess.run(["terraform", "plan", "-input=false", "-no-color"], cwd=folder,
                             env=tf_env, text=True, capture_output=True, timeout=300)
    assert refused.returncode != 0
    assert "a setting ./manifests does not know" in refused.stderr


def test_platform_objects_validate_against_the_kubernetes_schema(
        platform_objects: dict[str, dict]) -> None:
    import kubernetes_validate

    expected = {"Namespace/oppen", "PriorityClass/oppen-urgent", "PriorityClass/oppen-normal",
                "PriorityClass/oppen-background", "ResourceQuota/oppen-general",
                "ResourceQuota/oppen-background", "LimitRange/oppen-defaults",
                "ConfigMap/oppen-scheduling-policy", "ConfigMap/oppen-pricing",
                "Secret/oppen-database", "ServiceAccount/oppen-dispatcher", "Role/oppen-dispatcher",
                "RoleBinding/oppen-dispatcher", "Deployment/oppen-mlflow", "Service/oppen-mlflow",
                "Deployment/oppen-dispatcher", "Service/oppen-api", "ServiceAccount/oppen-training"}
    kueue = {"ResourceFlavor/on-demand", "ResourceFlavor/spot", "ClusterQueue/oppen",
             "LocalQueue/oppen-default", "LocalQueue/oppen-research"}
    assert set(platform_objects) == expected | kueue
    for key, obj in platform_objects.items():
        assert f"{obj['kind']}/{obj['metadata']['name']}" == key
        if key in kueue:
            continue  # Kueue's CRDs are not in Kubernetes' schema: checked in the Kueue test
        # Raises ValidationError on any unknown field, wrong type or missing required field.
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_platform_priorities_quotas_and_limits(platform_objects: dict[str, dict]) -> None:
    values = {k.split("/")[1]: o["value"] for k, o in platform_objects.items()
              if o["kind"] == "PriorityClass"}
    assert values == {"oppen-urgent": 1000, "oppen-normal": 100, "oppen-background": 10}
    general = platform_objects["ResourceQuota/oppen-general"]["spec"]
    assert general["hard"] == {"requests.nvidia.com/gpu": "2", "requests.cpu": "16",
                               "requests.memory": "32Gi"}
    background = platform_objects["ResourceQuota/oppen-background"]["spec"]
    assert background["hard"] == {"requests.nvidia.com/gpu": "1", "requests.memory": "4Gi"}
    assert background["scopeSelector"]["matchExpressions"][0]["values"] == ["oppen-background"]
    limits = platform_objects["LimitRange/oppen-defaults"]["spec"]["limits"][0]
    assert limits["default"] == {"cpu": "500m", "memory": "256Mi"}


def test_dispatcher_rbac_grants_only_jobs_pods_logs_and_services(
        platform_objects: dict[str, dict]) -> None:
    """The Role is the dispatcher's whole power in the cluster; this reads it rule by rule."""
    assert not any(o["kind"] in ("ClusterRole", "ClusterRoleBinding")
                   for o in platform_objects.values())
    role = platform_objects["Role/oppen-dispatcher"]
    assert role["metadata"]["namespace"] == "oppen"
    granted = {(group, resource, verb)
               for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    needed = {("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")}
    needed |= {("", "pods", v) for v in ("get", "list", "watch")}
    needed |= {("", "pods/log", "get")}
    # A data-parallel job's headless Service (its workers' rendezvous), made and removed.
    needed |= {("", "services", v) for v in ("create", "get", "delete")}
    assert granted == needed, f"beyond the dispatcher's needs: {sorted(granted - needed)}"
    assert not any("*" in item for entry in granted for item in entry)
    binding = platform_objects["RoleBinding/oppen-dispatcher"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "oppen-dispatcher"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "oppen-dispatcher",
                                    "namespace": "oppen"}]
    account = platform_objects["ServiceAccount/oppen-dispatcher"]
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/oppen-dev-dispatcher")


def test_training_pods_have_an_account_without_api_rights(platform_objects: dict[str, dict]) -> None:
    account = platform_objects["ServiceAccount/oppen-training"]
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        ":role/oppen-dev-training")
    bound = [s for o in platform_objects.values() if o["kind"] in ("RoleBinding",
                                                                    "ClusterRoleBinding")
             for s in o["subjects"]]
    assert all(s["name"] != "oppen-training" for s in bound), "training pods got API rights"


# Kueue v1beta1's fields, as its CRDs define them (what these objects may hold, no more).
KUEUE_FIELDS = {
    "ResourceFlavor": {"nodeLabels", "nodeTaints", "tolerations", "topologyName"},
    "ClusterQueue": {"namespaceSelector", "queueingStrategy", "preemption", "resourceGroups",
                     "cohort", "flavorFungibility", "stopPolicy", "admissionChecks",
                     "fairSharing"},
    "LocalQueue": {"clusterQueue", "stopPolicy"},
}


def test_kueue_flavors_queue_and_team_queues(platform_objects: dict[str, dict],
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flavors that match the node groups the aws-cluster module makes, one ClusterQueue with
    the quotas, a LocalQueue per team, and Oppen's settings sending each team's Jobs there."""
    kueue = {k: o for k, o in platform_objects.items() if o["apiVersion"] == "kueue.x-k8s.io/v1beta1"}
    for key, obj in kueue.items():
        assert set(obj["spec"]) <= KUEUE_FIELDS[obj["kind"]], key
    on_demand = kueue["ResourceFlavor/on-demand"]["spec"]
    spot = kueue["ResourceFlavor/spot"]["spec"]
    # lower(capacity_type) is the node label aws-cluster sets; SPOT groups carry the taint.
    cluster_tf = (REPO / "terraform" / "modules" / "aws-cluster" / "main.tf").read_text()
    assert '"oppen.dev/capacity-type" = lower(each.value.capacity_type)' in cluster_tf
    assert on_demand["nodeLabels"] == {"oppen.dev/capacity-type": "on_demand"}
    assert spot["nodeLabels"] == {"oppen.dev/capacity-type": "spot"}
    assert spot["nodeTaints"] == [{"key": "oppen.dev/spot", "value": "true",
                                   "effect": "NoSchedule"}]
    assert 'spot_taint = { key = "oppen.dev/spot", value = "true", effect = "NO_SCHEDULE" }' \
        in cluster_tf
    queue = kueue["ClusterQueue/oppen"]["spec"]
    assert queue["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "oppen"}}
    group = queue["resourceGroups"][0]
    assert group["coveredResources"] == ["cpu", "memory", "nvidia.com/gpu"]
    quotas = {f["name"]: {r["name"]: r["nominalQuota"] for r in f["resources"]}
              for f in group["flavors"]}
    assert quotas == {"on-demand": {"cpu": "32", "memory": "128Gi", "nvidia.com/gpu": "4"},
                      "spot": {"cpu": "64", "memory": "256Gi", "nvidia.com/gpu": "8"}}
    for team in ("default", "research"):
        local = kueue[f"LocalQueue/oppen-{team}"]
        assert local["metadata"]["namespace"] == "oppen"
        assert local["spec"] == {"clusterQueue": "oppen"}

    # The settings the dispatcher reads send a research job's Kubernetes Job to its queue.
    from app.core.executors.k8s_manifest import JobTemplate, render_job
    from app.core.models import Job

    s = _settings_the_platform_sets(platform_objects, tmp_path, monkeypatch)
    assert s.checkpoint_uri == "s3://oppen-dev-artifacts/checkpoints"
    manifest = render_job(Job(id=3, name="r", team="research", attempts=1, config={}),
                          JobTemplate(kueue_queue=s.kueue_queue_name,
                                      service_account=s.k8s_service_account))
    assert manifest["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "oppen-research"
    assert manifest["spec"]["suspend"] is True
    assert manifest["spec"]["template"]["spec"]["serviceAccountName"] == "oppen-training"


def _settings_the_platform_sets(platform_objects: dict[str, dict], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> Any:
    """Oppen's settings as the dispatcher pod reads them: the policy ConfigMap, nothing else."""
    from app.core.settings import load_settings

    policy = tmp_path / "oppen.toml"
    policy.write_text(platform_objects["ConfigMap/oppen-scheduling-policy"]["data"]["oppen.toml"])
    for name in list(os.environ):
        if name.startswith("OPPEN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OPPEN_CONFIG", str(policy))
    return load_settings()


def test_platform_config_is_what_oppen_reads(platform_objects: dict[str, dict], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert platform_objects["ConfigMap/oppen-pricing"]["data"]["pricing.toml"] == \
        PRICING_FILE.read_text()
    settings = _settings_the_platform_sets(platform_objects, tmp_path, monkeypatch)
    assert settings.executor == "kubernetes"
    assert settings.k8s_service_account == "oppen-training"  # not the dispatcher's account
    assert settings.k8s_namespace == "oppen"
    assert settings.k8s_image.endswith("/oppen:0.1.0-train")  # the lean training image
    mlflow = platform_objects["Deployment/oppen-mlflow"]["spec"]["template"]["spec"]
    assert mlflow["containers"][0]["image"].endswith("/oppen:0.1.0")  # the server image
    dispatcher = platform_objects["Deployment/oppen-dispatcher"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in dispatcher["containers"][0]["env"]}
    assert env["OPPEN_CONFIG"]["value"] == "/etc/oppen/oppen.toml"
    assert env["OPPEN_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "oppen-database"
    # The Deployment runs the API server, which the Service exposes, and the CLI accepts the
    # container's arguments.
    container = dispatcher["containers"][0]
    assert container["args"][0] == "serve"
    assert oppen_cli_accepts(container["args"])
    api = platform_objects["Service/oppen-api"]["spec"]
    assert api["selector"].items() <= platform_objects["Deployment/oppen-dispatcher"][
        "spec"]["template"]["metadata"]["labels"].items()
    assert api["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


def oppen_cli_accepts(args: list[str]) -> bool:
    """Parses (without running) `oppen <args>` with click."""
    from app.cli import cli

    ctx = cli.make_context("oppen", list(args), resilient_parsing=False)
    sub = cli.get_command(ctx, args[0])
    assert sub is not None, args[0]
    sub.make_context(args[0], list(args[1:]), parent=ctx)
    return True


def test_ensure_database_creates_once(postgres_url: str) -> None:
    from app.core.ensure_database import ensure_database

    url = postgres_url.rsplit("/", 1)[0] + "/mlflow_ensure_test"
    assert ensure_database(url) is True
    assert ensure_database(url) is False
