# Every Kubernetes object of the Oppen platform, as plain data. The parent module hands each one
# to `kubernetes_manifest`; tests render them with `terraform apply` here and validate them
# against the official Kubernetes schema, no cluster or Kubernetes provider needed.

locals {
  labels = merge(var.labels, {
    "app.kubernetes.io/part-of"    = "oppen"
    "app.kubernetes.io/managed-by" = "terraform"
  })

  mlflow_port = 5000
  api_port    = 8080

  namespace = {
    apiVersion = "v1"
    kind       = "Namespace"
    metadata   = { name = var.namespace, labels = local.labels }
  }

  # Cluster-scoped: the three priority classes Oppen's Jobs name, matching its priority classes.
  priority_classes = {
    for name, spec in {
      urgent     = { value = 1000, preemption = "PreemptLowerPriority", about = "Urgent Oppen training: may preempt lower-priority pods." }
      normal     = { value = 100, preemption = "PreemptLowerPriority", about = "Normal Oppen training." }
      background = { value = 10, preemption = "Never", about = "Background Oppen training: waits, never preempts." }
    } :
    "PriorityClass/oppen-${name}" => {
      apiVersion       = "scheduling.k8s.io/v1"
      kind             = "PriorityClass"
      metadata         = { name = "oppen-${name}", labels = local.labels }
      value            = spec.value
      globalDefault    = false
      preemptionPolicy = spec.preemption
      description      = spec.about
    }
  }

  kueue_enabled = length(var.kueue.teams) > 0

  # Training pods run as their own account (no API rights), not the dispatcher's.
  scheduling_policy_toml = format("%s\n", join("\n", concat([
    "# Oppen scheduling policy, mounted at /etc/oppen/oppen.toml (OPPEN_CONFIG).",
    "executor = \"kubernetes\"",
    "k8s_namespace = \"${var.namespace}\"",
    "k8s_image = \"${var.training_image == "" ? var.image : var.training_image}\"",
    "k8s_service_account = \"${var.training_service_account}\"",
    "max_concurrent_jobs = ${var.max_concurrent_jobs}",
    "dispatch_interval_s = 5.0",
    "lease_ttl_s = 30.0",
    ],
    var.checkpoint_uri == "" ? [] : ["checkpoint_uri = \"${var.checkpoint_uri}\""],
    # Each team's Jobs go to its LocalQueue, oppen-<team>.
    local.kueue_enabled ? ["kueue_queue_name = \"oppen-{team}\""] : [],
  )))

  # Kueue (installed separately, v0.6 or later): a ResourceFlavor per capacity type, matching
  # the node groups' oppen.dev/capacity-type label; one ClusterQueue whose quota is split
  # between them; a LocalQueue per team. A Job Kueue holds suspended is shown as waiting.
  kueue_flavors = {
    "ResourceFlavor/on-demand" = {
      apiVersion = "kueue.x-k8s.io/v1beta1"
      kind       = "ResourceFlavor"
      metadata   = { name = "on-demand", labels = local.labels }
      spec       = { nodeLabels = { "oppen.dev/capacity-type" = "on_demand" } }
    }
    "ResourceFlavor/spot" = {
      apiVersion = "kueue.x-k8s.io/v1beta1"
      kind       = "ResourceFlavor"
      metadata   = { name = "spot", labels = local.labels }
      spec = {
        nodeLabels = { "oppen.dev/capacity-type" = "spot" }
        nodeTaints = [{ key = "oppen.dev/spot", value = "true", effect = "NoSchedule" }]
      }
    }
  }

  kueue_cluster_queue = {
    "ClusterQueue/oppen" = {
      apiVersion = "kueue.x-k8s.io/v1beta1"
      kind       = "ClusterQueue"
      metadata   = { name = "oppen", labels = local.labels }
      spec = {
        namespaceSelector = { matchLabels = { "kubernetes.io/metadata.name" = var.namespace } }
        queueingStrategy  = "BestEffortFIFO"
        preemption        = { withinClusterQueue = "LowerPriority", reclaimWithinCohort = "Never" }
        resourceGroups = [{
          coveredResources = ["cpu", "memory", "nvidia.com/gpu"]
          flavors = [
            for name, quota in { "on-demand" = var.kueue.on_demand, "spot" = var.kueue.spot } : {
              name                           = name
              resources = [
                { name = "cpu", nominalQuota = quota.cpu },
                { name = "memory", nominalQuota = quota.memory },
                { name = "nvidia.com/gpu", nominalQuota = tostring(quota.gpus) },
              ]
            }
          ]
        }]
      }
    }
  }

  kueue_local_queues = {
    for team in var.kueue.teams : "LocalQueue/oppen-${team}" => {
      apiVersion = "kueue.x-k8s.io/v1beta1"
      kind       = "LocalQueue"
      metadata   = { name = "oppen-${team}", namespace = var.namespace, labels = merge(local.labels, { "oppen.dev/team" = team }) }
      spec       = { clusterQueue = "oppen" }
    }
  }

  # As YAML (objects of different shapes cannot share one map), none without teams.
  kueue_yaml = {
    for key, object in merge(local.kueue_flavors, local.kueue_cluster_queue, local.kueue_local_queues) :
    key => yamlencode(object) if local.kueue_enabled
  }

  common_env = [
    { name = "OPPEN_CONFIG", value = "/etc/oppen/oppen.toml" },
    { name = "OPPEN_HOME", value = "/var/lib/oppen" },
    { name = "OPPEN_PRICING_FILE", value = "/etc/oppen/pricing.toml" },
    { name = "OPPEN_MLFLOW_TRACKING_URI", value = "http://oppen-mlflow.${var.namespace}.svc:${local.mlflow_port}" },
    { name = "OPPEN_DATABASE_URL", valueFrom = { secretKeyRef = { name = "oppen-database", key = "database-url" } } },
  ]

  pod_security = {
    runAsNonRoot = true
    runAsUser    = 10001
    runAsGroup   = 10001
    fsGroup      = 10001
    seccompProfile = {
      type = "RuntimeDefault"
    }
  }

  container_security = {
    allowPrivilegeEscalation = false
    capabilities             = { drop = ["ALL"] }
  }

  namespaced = {
    "ResourceQuota/oppen-general" = {
      apiVersion = "v1"
      kind       = "ResourceQuota"
      metadata   = { name = "oppen-general", namespace = var.namespace, labels = local.labels }
      spec = {
        hard = {
          "requests.nvidia.com/gpu" = tostring(var.general_quota.gpus)
          "requests.cpu"            = var.general_quota.cpu
          "requests.memory"         = var.general_quota.memory
        }
        scopeSelector = {
          matchExpressions = [{ scopeName = "PriorityClass", operator = "In", values = ["oppen-urgent", "oppen-normal"] }]
        }
      }
    }

    "ResourceQuota/oppen-background" = {
      apiVersion = "v1"
      kind       = "ResourceQuota"
      metadata   = { name = "oppen-background", namespace = var.namespace, labels = local.labels }
      spec = {
        hard = {
          "requests.nvidia.com/gpu" = tostring(var.background_quota.gpus)
          "requests.memory"         = var.background_quota.memory
        }
        scopeSelector = {
          matchExpressions = [{ scopeName = "PriorityClass", operator = "In", values = ["oppen-background"] }]
        }
      }
    }

    "LimitRange/oppen-defaults" = {
      apiVersion = "v1"
      kind       = "LimitRange"
      metadata   = { name = "oppen-defaults", namespace = var.namespace, labels = local.labels }
      spec = {
        limits = [{
          type           = "Container"
          default        = { cpu = var.default_container_limits.cpu, memory = var.default_container_limits.memory }
          defaultRequest = { cpu = var.default_container_limits.cpu, memory = var.default_container_limits.memory }
        }]
      }
    }

    "ConfigMap/oppen-scheduling-policy" = {
      apiVersion = "v1"
      kind       = "ConfigMap"
      metadata   = { name = "oppen-scheduling-policy", namespace = var.namespace, labels = local.labels }
      data       = { "oppen.toml" = local.scheduling_policy_toml }
    }

    "ConfigMap/oppen-pricing" = {
      apiVersion = "v1"
      kind       = "ConfigMap"
      metadata   = { name = "oppen-pricing", namespace = var.namespace, labels = local.labels }
      data       = { "pricing.toml" = var.pricing_toml }
    }

    "Secret/oppen-database" = {
      apiVersion = "v1"
      kind       = "Secret"
      metadata   = { name = "oppen-database", namespace = var.namespace, labels = local.labels }
      type       = "Opaque"
      stringData = {
        "database-url"       = var.database_url
        "mlflow-backend-uri" = var.mlflow_backend_store_uri
      }
    }

    "ServiceAccount/${var.dispatcher_service_account}" = {
      apiVersion = "v1"
      kind       = "ServiceAccount"
      metadata = {
        name        = var.dispatcher_service_account
        namespace   = var.namespace
        labels      = local.labels
        annotations = var.dispatcher_role_arn == "" ? {} : { "eks.amazonaws.com/role-arn" = var.dispatcher_role_arn }
      }
    }

    # The training pods' account: no Role is bound to it and its token is not mounted, so a
    # training pod cannot reach the Kubernetes API; on EKS it may assume the training role
    # (its checkpoints in S3, nothing else).
    "ServiceAccount/${var.training_service_account}" = {
      apiVersion = "v1"
      kind       = "ServiceAccount"
      metadata = {
        name        = var.training_service_account
        namespace   = var.namespace
        labels      = local.labels
        annotations = var.training_role_arn == "" ? {} : { "eks.amazonaws.com/role-arn" = var.training_role_arn }
      }
      automountServiceAccountToken = false
    }

    # What the dispatcher does in the cluster: create, watch and delete training Jobs (and a
    # data-parallel job's headless Service, its workers' rendezvous), read their pods' states
    # and logs. Nothing else, and only in its own namespace.
    "Role/oppen-dispatcher" = {
      apiVersion = "rbac.authorization.k8s.io/v1"
      kind       = "Role"
      metadata   = { name = "oppen-dispatcher", namespace = var.namespace, labels = local.labels }
      rules = [
        { apiGroups = ["batch"], resources = ["jobs"], verbs = ["create", "get", "list", "watch", "delete"] },
        { apiGroups = [""], resources = ["pods"], verbs = ["get", "list", "watch"] },
        { apiGroups = [""], resources = ["pods/log"], verbs = ["get"] },
        { apiGroups = [""], resources = ["services"], verbs = ["create", "get", "delete"] },
      ]
    }

    "RoleBinding/oppen-dispatcher" = {
      apiVersion = "rbac.authorization.k8s.io/v1"
      kind       = "RoleBinding"
      metadata   = { name = "oppen-dispatcher", namespace = var.namespace, labels = local.labels }
      roleRef    = { apiGroup = "rbac.authorization.k8s.io", kind = "Role", name = "oppen-dispatcher" }
      subjects   = [{ kind = "ServiceAccount", name = var.dispatcher_service_account, namespace = var.namespace }]
    }

    "Deployment/oppen-mlflow" = {
      apiVersion = "apps/v1"
      kind       = "Deployment"
      metadata   = { name = "oppen-mlflow", namespace = var.namespace, labels = merge(local.labels, { "app.kubernetes.io/name" = "mlflow" }) }
      spec = {
        replicas = 1
        selector = { matchLabels = { "app.kubernetes.io/name" = "mlflow", "app.kubernetes.io/part-of" = "oppen" } }
        template = {
          metadata = { labels = merge(local.labels, { "app.kubernetes.io/name" = "mlflow" }) }
          spec = {
            serviceAccountName = var.dispatcher_service_account
            securityContext    = local.pod_security
            # RDS creates one database; MLflow's own is made on first start.
            initContainers = [{
              name            = "create-database"
              image           = var.image
              command         = ["python", "-m", "app.core.ensure_database", "$(MLFLOW_BACKEND_STORE_URI)"]
              env             = [{ name = "MLFLOW_BACKEND_STORE_URI", valueFrom = { secretKeyRef = { name = "oppen-database", key = "mlflow-backend-uri" } } }]
              securityContext = local.container_security
            }]
            containers = [{
              name    = "mlflow"
              image   = var.image
              command = ["mlflow"]
              args = [
                "server",
                "--backend-store-uri", "$(MLFLOW_BACKEND_STORE_URI)",
                "--artifacts-destination", var.mlflow_artifact_root,
                "--serve-artifacts",
                "--host", "0.0.0.0",
                "--port", tostring(local.mlflow_port),
              ]
              env = concat(
                [{ name = "MLFLOW_BACKEND_STORE_URI", valueFrom = { secretKeyRef = { name = "oppen-database", key = "mlflow-backend-uri" } } }],
                var.aws_region == "" ? [] : [{ name = "AWS_DEFAULT_REGION", value = var.aws_region }],
              )
              ports          = [{ name = "http", containerPort = local.mlflow_port }]
              readinessProbe = { httpGet = { path = "/health", port = "http" }, periodSeconds = 10 }
              livenessProbe  = { httpGet = { path = "/health", port = "http" }, initialDelaySeconds = 30, periodSeconds = 20 }
              resources = {
                requests = { cpu = "250m", memory = "512Mi" }
                limits   = { cpu = "1", memory = "1Gi" }
              }
              securityContext = local.container_security
            }]
          }
        }
      }
    }

    "Service/oppen-mlflow" = {
      apiVersion = "v1"
      kind       = "Service"
      metadata   = { name = "oppen-mlflow", namespace = var.namespace, labels = merge(local.labels, { "app.kubernetes.io/name" = "mlflow" }) }
      spec = {
        type     = "ClusterIP"
        selector = { "app.kubernetes.io/name" = "mlflow", "app.kubernetes.io/part-of" = "oppen" }
        ports    = [{ name = "http", port = local.mlflow_port, targetPort = "http" }]
      }
    }

    "Deployment/oppen-dispatcher" = {
      apiVersion = "apps/v1"
      kind       = "Deployment"
      metadata   = { name = "oppen-dispatcher", namespace = var.namespace, labels = merge(local.labels, { "app.kubernetes.io/name" = "oppen-dispatcher" }) }
      spec = {
        replicas = var.dispatcher_replicas
        selector = { matchLabels = { "app.kubernetes.io/name" = "oppen-dispatcher", "app.kubernetes.io/part-of" = "oppen" } }
        template = {
          metadata = { labels = merge(local.labels, { "app.kubernetes.io/name" = "oppen-dispatcher" }) }
          spec = {
            serviceAccountName = var.dispatcher_service_account
            securityContext    = local.pod_security
            # SIGTERM makes the server finish its requests, the dispatcher its tick, and
            # give up the lease.
            terminationGracePeriodSeconds = 30
            containers = [{
              name            = "dispatcher"
              image           = var.image
              args            = var.dispatcher_args
              env             = local.common_env
              ports           = [{ name = "http", containerPort = local.api_port }]
              readinessProbe  = { httpGet = { path = "/healthz", port = "http" }, periodSeconds = 10 }
              livenessProbe   = { httpGet = { path = "/healthz", port = "http" }, initialDelaySeconds = 20, periodSeconds = 20 }
              volumeMounts    = [{ name = "config", mountPath = "/etc/oppen", readOnly = true }, { name = "home", mountPath = "/var/lib/oppen" }]
              resources       = { requests = { cpu = "250m", memory = "512Mi" }, limits = { cpu = "1", memory = "1Gi" } }
              securityContext = local.container_security
            }]
            volumes = [
              {
                name = "config"
                projected = {
                  sources = [
                    { configMap = { name = "oppen-scheduling-policy" } },
                    { configMap = { name = "oppen-pricing" } },
                  ]
                }
              },
              { name = "home", emptyDir = {} },
            ]
          }
        }
      }
    }

    # The API that CLIs, dashboards and agents reach with OPPEN_SERVER_URL.
    "Service/oppen-api" = {
      apiVersion = "v1"
      kind       = "Service"
      metadata   = { name = "oppen-api", namespace = var.namespace, labels = merge(local.labels, { "app.kubernetes.io/name" = "oppen-dispatcher" }) }
      spec = {
        type     = "ClusterIP"
        selector = { "app.kubernetes.io/name" = "oppen-dispatcher", "app.kubernetes.io/part-of" = "oppen" }
        ports    = [{ name = "http", port = local.api_port, targetPort = "http" }]
      }
    }
  }
}
