{{/* Name prefix of every object: the release name, plus "sensorcast" unless it already says so. */}}
{{- define "sensorcast.fullname" -}}
{{- if contains "sensorcast" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-sensorcast" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sensorcast.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/part-of: sensorcast
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The labels of one component's objects and pods: sensorcast.labels plus the selector's. */}}
{{- define "sensorcast.componentLabels" -}}
{{ include "sensorcast.labels" .root }}
app.kubernetes.io/name: sensorcast
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "root" $ "component" "edge"). */}}
{{- define "sensorcast.selector" -}}
app.kubernetes.io/name: sensorcast
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sensorcast.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The Secret holding the token secret: the user's, or the chart's. */}}
{{- define "sensorcast.authSecret" -}}
{{- if .Values.auth.existingSecret -}}
{{ .Values.auth.existingSecret }}
{{- else if .Values.auth.jwtSecret -}}
{{ include "sensorcast.fullname" . }}-auth
{{- else -}}
{{- fail "auth: set auth.existingSecret (a Secret with key jwt-secret) or auth.jwtSecret (at least 16 characters): edges and the registry need the token secret" -}}
{{- end -}}
{{- end -}}

{{- define "sensorcast.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sensorcast.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Spread a component's pods over nodes and zones; call with (dict "root" $ "component" "edge"). */}}
{{- define "sensorcast.topologySpread" -}}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "sensorcast.selector" . | nindent 6 }}
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "sensorcast.selector" . | nindent 6 }}
{{- end -}}

{{/* Environment every service reads; call with (dict "root" $ "component" "edge"). */}}
{{- define "sensorcast.commonEnv" -}}
- name: SENSORCAST_NATS_URL
  value: {{ .root.Values.nats.url | quote }}
- name: SENSORCAST_LOG_LEVEL
  value: {{ .root.Values.logLevel | quote }}
- name: SENSORCAST_LOG_FORMAT
  value: json
{{- include "sensorcast.tracingEnv" . }}
{{- end -}}

{{/*
The standard OpenTelemetry environment the services read (tracing.*), or
nothing without tracing.endpoint: the services trace only when told where
to. Every line starts with a newline, so that nothing at all is rendered
when tracing is off.
*/}}
{{- define "sensorcast.tracingEnv" -}}
{{- with .root.Values.tracing }}
{{- if .endpoint }}
- name: OTEL_SERVICE_NAME
  value: sensorcast-{{ $.component }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
{{- /* The other samplers take no argument. */}}
{{- if hasSuffix "traceidratio" .sampler }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | quote }}
{{- end }}
{{- with .headers.existingSecret }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: {{ $.root.Values.tracing.headers.existingSecretKey }}}
{{- end }}
{{- /*
The pod's identity from the downward API, for OTEL_RESOURCE_ATTRIBUTES:
$(VAR) there expands only variables defined above it. (The names are the
ones the OpenTelemetry operator injects.)
*/}}
- name: OTEL_RESOURCE_ATTRIBUTES_POD_NAME
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
- name: OTEL_RESOURCE_ATTRIBUTES_NAMESPACE
  valueFrom:
    fieldRef: {fieldPath: metadata.namespace}
- name: OTEL_RESOURCE_ATTRIBUTES_NODE_NAME
  valueFrom:
    fieldRef: {fieldPath: spec.nodeName}
{{- $attrs := list "k8s.pod.name=$(OTEL_RESOURCE_ATTRIBUTES_POD_NAME)" "k8s.namespace.name=$(OTEL_RESOURCE_ATTRIBUTES_NAMESPACE)" "k8s.node.name=$(OTEL_RESOURCE_ATTRIBUTES_NODE_NAME)" }}
{{- /* The user's come last, so that they win over the pod's. */}}
{{- range $k, $v := .resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "sensorcast.redisEnv" -}}
- name: SENSORCAST_REDIS_URL
{{- if .Values.redis.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.existingSecretKey }}
{{- else }}
  value: {{ .Values.redis.url | quote }}
{{- end }}
{{- end -}}

{{- define "sensorcast.jwtEnv" -}}
- name: SENSORCAST_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "sensorcast.authSecret" . }}
      key: jwt-secret
{{- end -}}

{{/* Ingest and edge call the registry, minting their own short-lived tokens with its secret. */}}
{{- define "sensorcast.registryClientEnv" -}}
- name: SENSORCAST_REGISTRY_URL
  value: {{ printf "%s-registry:9091" (include "sensorcast.fullname" .) | quote }}
- name: SENSORCAST_REGISTRY_TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "sensorcast.authSecret" . }}
      key: jwt-secret
{{- end -}}

{{/* A PodDisruptionBudget; call with (dict "root" $ "component" "edge"). */}}
{{- define "sensorcast.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "sensorcast.fullname" .root }}-{{ .component }}
  labels:
    {{- include "sensorcast.labels" .root | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "sensorcast.selector" . | nindent 6 }}
{{- end -}}

{{- define "sensorcast.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "sensorcast.fullname" .root }}-{{ .component }}
  labels:
    {{- include "sensorcast.labels" .root | nindent 4 }}
automountServiceAccountToken: {{ .automount | default false }}
{{- end -}}
