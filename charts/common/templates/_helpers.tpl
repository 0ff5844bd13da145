{{/*
Names and labels. A workload's resources are named after its chart (not its release), because
the services find each other by Service name: http://package:8080 inside the namespace.
*/}}
{{- define "common.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "common.selectorLabels" -}}
app.kubernetes.io/name: {{ include "common.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "common.labels" -}}
{{ include "common.selectorLabels" . }}
app.kubernetes.io/version: {{ include "common.imageTag" . | quote }}
app.kubernetes.io/component: {{ .Values.component }}
app.kubernetes.io/part-of: drone-delivery
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
drone-delivery/environment: {{ .Values.environment }}
{{- end -}}

{{- define "common.smokeTestName" -}}
{{- printf "%s-smoke-test" (include "common.name" .) -}}
{{- end -}}

{{/* The smoke test Pod is not one of the workload's pods: it must not match its selector. */}}
{{- define "common.smokeTestLabels" -}}
app.kubernetes.io/name: {{ include "common.smokeTestName" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: smoke-test
app.kubernetes.io/part-of: drone-delivery
app.kubernetes.io/managed-by: {{ .Release.Service }}
drone-delivery/environment: {{ .Values.environment }}
{{- end -}}

{{/*
The image by registry, repository, tag and digest. The digest is what runs (the one the pipeline
built and scanned); the tag is there for people reading `kubectl get pods -o wide`.
*/}}
{{- define "common.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{- define "common.image" -}}
{{- $registry := required "image.registry is required: the private registry, e.g. <acr>.azurecr.io" .Values.image.registry -}}
{{- $digest := required "image.digest is required: the sha256 digest of the image to run" .Values.image.digest -}}
{{- printf "%s/%s:%s@%s" $registry .Values.image.repository (include "common.imageTag" .) $digest -}}
{{- end -}}

{{/*
The pod and container security context of the Kubernetes "restricted" Pod Security Standard,
for the workload and its smoke test alike. Nothing in it is a value: no environment may relax it.
*/}}
{{- define "common.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "common.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "common.secretsMountPath" -}}/mnt/secrets-store{{- end -}}

{{- define "common.usesKeyVault" -}}
{{- if .Values.keyVault.secrets }}true{{ end -}}
{{- end -}}
