{{/*
The workload's Deployment. It has no `replicas`: the HorizontalPodAutoscaler owns the count, and
a value here would reset it on every upgrade.
*/}}
{{- define "common.deployment" -}}
{{- $name := include "common.name" . -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "common.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      # A rollout adds a pod before it removes one, so capacity never drops below the HPA's count.
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "common.labels" . | nindent 8 }}
        {{- if .Values.workloadIdentity.enabled }}
        # The workload identity webhook injects the federated token and AZURE_* variables.
        azure.workload.identity/use: "true"
        {{- end }}
    spec:
      serviceAccountName: {{ $name }}
      # The app never calls the Kubernetes API; workload identity projects its own token.
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      securityContext:
        {{- include "common.podSecurityContext" . | nindent 8 }}
      topologySpreadConstraints:
        {{- range $key := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
        - topologyKey: {{ $key }}
          maxSkew: 1
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "common.selectorLabels" $ | nindent 14 }}
        {{- end }}
      containers:
        - name: {{ $name }}
          image: {{ include "common.image" . }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          env:
            {{- include "common.env" . | trim | nindent 12 }}
          readinessProbe:
            {{- include "common.probe" .Values.probes.readiness | nindent 12 }}
          livenessProbe:
            {{- include "common.probe" .Values.probes.liveness | nindent 12 }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          securityContext:
            {{- include "common.containerSecurityContext" . | nindent 12 }}
          {{- with .Values.lifecycle }}
          lifecycle:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            # The only writable path: the root filesystem is read-only.
            - name: tmp
              mountPath: /tmp
            {{- if include "common.usesKeyVault" . }}
            - name: secrets-store
              mountPath: {{ include "common.secretsMountPath" . }}
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ .Values.tmpSizeLimit }}
        {{- if include "common.usesKeyVault" . }}
        - name: secrets-store
          csi:
            driver: secrets-store.csi.k8s.io
            readOnly: true
            volumeAttributes:
              secretProviderClass: {{ $name }}
        {{- end }}
{{- end -}}

{{- define "common.probe" -}}
httpGet:
  path: {{ .path }}
  port: http
initialDelaySeconds: {{ .initialDelaySeconds }}
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
{{- end -}}

{{/*
The container's environment: <PREFIX>ENVIRONMENT from `environment`, where the secrets are mounted,
the pod's whereabouts for telemetry (servicekit adds them to every span), then the chart's own
settings (`env`, by name). Secrets are never here: they are files in SECRETS_DIR, each named like
the variable it stands for.
*/}}
{{- define "common.env" -}}
{{- if .Values.settingsPrefix }}
- name: {{ printf "%sENVIRONMENT" .Values.settingsPrefix }}
  value: {{ required "environment is required: dev, qa, staging or prod" .Values.environment | quote }}
{{- end }}
{{- if include "common.usesKeyVault" . }}
- name: SECRETS_DIR
  value: {{ include "common.secretsMountPath" . | quote }}
{{- end }}
{{- range $variable, $field := dict "K8S_POD_NAME" "metadata.name" "K8S_NAMESPACE_NAME" "metadata.namespace" "K8S_NODE_NAME" "spec.nodeName" }}
- name: {{ $variable }}
  valueFrom:
    fieldRef:
      fieldPath: {{ $field }}
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}
