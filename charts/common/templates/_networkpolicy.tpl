{{/*
What the workload may talk to, on top of the namespace's default deny and DNS allowance (the
platform chart): who may call it, whom it calls, and which destinations outside the cluster it
reaches. Callers and callees are named by their app.kubernetes.io/name.
*/}}
{{- define "common.networkPolicy" -}}
{{- $policy := .Values.networkPolicy -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "common.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        # `helm test` checks the service from its own pod.
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: {{ include "common.smokeTestName" . }}
        {{- range $policy.callers }}
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: {{ . }}
        {{- end }}
        {{- range $policy.callerNamespaces }}
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ . }}
        {{- end }}
        {{- range $policy.callerCidrs }}
        - ipBlock:
            cidr: {{ . }}
        {{- end }}
      ports:
        - port: http
          protocol: TCP
  egress:
    {{- range $policy.calls }}
    - to:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: {{ . }}
      ports:
        - port: 8080
          protocol: TCP
    {{- end }}
    {{- range $destination, $rule := $policy.egress }}
    # {{ $destination }}
    - to:
        {{- range required (printf "networkPolicy.egress.%s.cidrs is required: the address ranges it may reach" $destination) $rule.cidrs }}
        - ipBlock:
            cidr: {{ . }}
        {{- end }}
      ports:
        {{- range $rule.ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
    {{- end }}
{{- end -}}
