{{- define "common.notes" -}}
{{ include "common.name" . }} {{ include "common.imageTag" . }} is installed in {{ .Release.Namespace }} ({{ .Values.environment }}).

Watch the rollout, then check it from inside the namespace:
  kubectl --namespace {{ .Release.Namespace }} rollout status deployment/{{ include "common.name" . }}
  helm test {{ .Release.Name }} --namespace {{ .Release.Namespace }} --logs

Inside the namespace it answers at http://{{ include "common.name" . }}:{{ .Values.service.port }}.
{{- end -}}
