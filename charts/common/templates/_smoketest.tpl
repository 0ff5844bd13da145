{{/*
`helm test <release>`: a pod that asks the workload's Service whether it is ready, in the
workload's own image (so no other image is pulled), and the NetworkPolicy that lets it ask.
*/}}
{{- define "common.smokeTest" -}}
{{- $name := include "common.smokeTestName" . -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.smokeTestLabels" . | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-weight: "-1"
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {{ $name }}
  policyTypes: [Ingress, Egress]
  egress:
    - to:
        - podSelector:
            matchLabels:
              {{- include "common.selectorLabels" . | nindent 14 }}
      ports:
        - port: 8080
          protocol: TCP
---
apiVersion: v1
kind: Pod
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.smokeTestLabels" . | nindent 4 }}
  annotations:
    helm.sh/hook: test
    # Kept after it ran, so that `helm test --logs` can show what it saw.
    helm.sh/hook-delete-policy: before-hook-creation
    checkov.io/skip1: CKV_K8S_8=A one-shot check that runs to completion; restarting it on a failed liveness probe would hide the failure
    checkov.io/skip2: CKV_K8S_9=A one-shot check; no Service routes to it, so there is nothing for a readiness probe to gate
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext:
    {{- include "common.podSecurityContext" . | nindent 4 }}
  containers:
    - name: smoke-test
      image: {{ include "common.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command:
        {{- toYaml .Values.smokeTest.command | nindent 8 }}
        - {{ printf "http://%s:%v%s" (include "common.name" .) .Values.service.port .Values.smokeTest.path | quote }}
      resources:
        requests:
          cpu: 10m
          memory: 32Mi
        limits:
          cpu: 100m
          memory: 64Mi
      securityContext:
        {{- include "common.containerSecurityContext" . | nindent 8 }}
{{- end -}}
