{{- define "platform.namespace" -}}
{{- printf "shipping-%s" (required "environment is required: dev, qa, staging or prod" .Values.environment) -}}
{{- end -}}

{{- define "platform.labels" -}}
app.kubernetes.io/name: shipping-platform
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: drone-delivery
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
drone-delivery/environment: {{ .Values.environment }}
{{- end -}}
