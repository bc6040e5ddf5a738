{{/*
Names and labels.
*/}}
{{- define "tradeplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tradeplane.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one component's objects: "<fullname>-<component>", kept under 63 characters. */}}
{{- define "tradeplane.componentName" -}}
{{- printf "%s-%s" (include "tradeplane.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tradeplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tradeplane.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tradeplane.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tradeplane.selectorLabels" . }}
app.kubernetes.io/part-of: tradeplane
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* Labels every pod of the release carries; NetworkPolicies select on them. */}}
{{- define "tradeplane.releaseSelector" -}}
app.kubernetes.io/name: {{ include "tradeplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The gRPC services. The command is the one the `make up` launcher runs
(libs/platform/src/tradeplane/platform/registry.py: `python -m <module>`), and so are the ports;
tests/deploy/test_chart.py checks they stay equal.
*/}}
{{- define "tradeplane.grpcServices" -}}
market:
  module: tradeplane.market
  grpcPort: 50051
  metricsPort: 9101
  grpcPrefix: /trading.market.v1.
execution:
  module: tradeplane.execution
  grpcPort: 50052
  metricsPort: 9102
  grpcPrefix: /trading.execution.v1.
wallets:
  module: tradeplane.wallets
  grpcPort: 50053
  metricsPort: 9103
  grpcPrefix: /trading.wallets.v1.
backtest:
  module: tradeplane.backtest
  grpcPort: 50054
  metricsPort: 9104
  grpcPrefix: /trading.backtest.v1.
{{- end }}

{{- define "tradeplane.gateway" -}}
module: tradeplane.gateway
httpPort: 8080
metricsPort: 9105
{{- end }}

{{/* The tradeplane image: a component's own digest or tag wins over the global ones. */}}
{{- define "tradeplane.image" -}}
{{- $own := .image | default dict }}
{{- $global := .root.Values.image }}
{{- $repository := $own.repository | default $global.repository }}
{{- if $own.digest }}
{{- printf "%s@%s" $repository $own.digest }}
{{- else if $own.tag }}
{{- printf "%s:%s" $repository $own.tag }}
{{- else if $global.digest }}
{{- printf "%s@%s" $repository $global.digest }}
{{- else }}
{{- printf "%s:%s" $repository ($global.tag | default .root.Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Restricted Pod Security: pod level. `uid` lets third-party images keep their own user. */}}
{{- define "tradeplane.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Restricted Pod Security: container level, with a read-only root filesystem. */}}
{{- define "tradeplane.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "tradeplane.scrapeAnnotations" -}}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* Seconds Kubernetes waits after SIGTERM: preStop pause + the service's drain + a margin. */}}
{{- define "tradeplane.terminationGrace" -}}
{{- add .root.Values.shutdown.preStopSleepSeconds .root.Values.shutdown.graceSeconds .root.Values.shutdown.marginSeconds }}
{{- end }}

{{/* Which Secret and key hold a service's DATABASE_URL. */}}
{{- define "tradeplane.databaseSecretName" -}}
{{- if .Values.postgres.bundled.enabled }}
{{- include "tradeplane.componentName" (dict "root" . "component" "postgres") }}
{{- else }}
{{- .Values.database.existingSecret }}
{{- end }}
{{- end }}

{{- define "tradeplane.redisSecretName" -}}
{{- if .Values.redis.bundled.enabled }}
{{- include "tradeplane.componentName" (dict "root" . "component" "redis") }}
{{- else }}
{{- .Values.redis.existingSecret }}
{{- end }}
{{- end }}

{{- define "tradeplane.redisEnabled" -}}
{{- if or .Values.redis.bundled.enabled .Values.redis.existingSecret }}true{{- end }}
{{- end }}

{{/*
Environment shared by every tradeplane container (services, workers, gateway, migrations).
Secrets are referenced, never inlined.
*/}}
{{- define "tradeplane.commonEnv" -}}
{{- $root := .root }}
- name: SERVICE_NAME
  value: {{ .service | quote }}
- name: GRPC_HOST
  value: "0.0.0.0"
- name: LOG_LEVEL
  value: {{ $root.Values.logLevel | quote }}
- name: SHUTDOWN_GRACE_SECONDS
  value: {{ $root.Values.shutdown.graceSeconds | quote }}
- name: PYTHONUNBUFFERED
  value: "1"
- name: AUTH_MODE
  value: {{ $root.Values.auth.mode | quote }}
{{- if eq $root.Values.auth.mode "jwt" }}
- name: JWT_ALGORITHM
  value: {{ $root.Values.auth.jwt.algorithm | quote }}
{{- if eq $root.Values.auth.jwt.algorithm "HS256" }}
- name: JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.auth.jwt.existingSecret }}
      key: {{ $root.Values.auth.jwt.secretKey }}
{{- else }}
- name: JWT_PUBLIC_KEY
  value: /etc/tradeplane/jwt/{{ $root.Values.auth.jwt.publicKeyKey }}
{{- end }}
{{- with $root.Values.auth.jwt.issuer }}
- name: JWT_ISSUER
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.auth.jwt.audience }}
- name: JWT_AUDIENCE
  value: {{ . | quote }}
{{- end }}
{{- range list "EXECUTION_MARKET_TOKEN" "WALLETS_EXECUTION_TOKEN" "BACKTEST_MARKET_TOKEN" "GATEWAY_SERVICE_TOKEN" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.auth.serviceToken.existingSecret }}
      key: {{ $root.Values.auth.serviceToken.key }}
{{- end }}
{{- end }}
{{- range $name, $svc := fromYaml (include "tradeplane.grpcServices" $root) }}
- name: {{ upper $name }}_ADDR
  value: {{ printf "%s:%v" (include "tradeplane.componentName" (dict "root" $root "component" $name)) $svc.grpcPort | quote }}
{{- end }}
{{- if .database }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "tradeplane.databaseSecretName" $root }}
      key: {{ index $root.Values.database.keys .service }}
{{- end }}
{{- if include "tradeplane.redisEnabled" $root }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "tradeplane.redisSecretName" $root }}
      key: {{ $root.Values.redis.urlKey }}
{{- end }}
{{- if and .coinbase $root.Values.coinbase.enabled }}
- name: COINBASE_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.coinbase.existingSecret }}
      key: {{ $root.Values.coinbase.apiKeyKey }}
- name: COINBASE_API_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.coinbase.existingSecret }}
      key: {{ $root.Values.coinbase.apiSecretKey }}
{{- end }}
{{- if $root.Values.tracing.enabled }}
- name: OTEL_TRACES_EXPORTER
  value: otlp
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $root.Values.tracing.otlpEndpoint | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ .service | quote }}
{{- else }}
- name: OTEL_TRACES_EXPORTER
  value: none
{{- end }}
{{- range $key, $value := $root.Values.extraEnv }}
- name: {{ $key }}
  value: {{ $value | quote }}
{{- end }}
{{- range $key, $value := .env }}
- name: {{ $key }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* Volumes every tradeplane pod mounts: /tmp (the root filesystem is read-only), JWT key. */}}
{{- define "tradeplane.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if and (eq .Values.auth.mode "jwt") (eq .Values.auth.jwt.algorithm "ES256") }}
- name: jwt
  secret:
    secretName: {{ .Values.auth.jwt.existingSecret }}
    items:
      - key: {{ .Values.auth.jwt.publicKeyKey }}
        path: {{ .Values.auth.jwt.publicKeyKey }}
{{- end }}
{{- end }}

{{- define "tradeplane.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if and (eq .Values.auth.mode "jwt") (eq .Values.auth.jwt.algorithm "ES256") }}
- name: jwt
  mountPath: /etc/tradeplane/jwt
  readOnly: true
{{- end }}
{{- end }}

{{/* Native gRPC probes on grpc.health.v1 ("" = the whole server). */}}
{{- define "tradeplane.grpcProbes" -}}
startupProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: {{ .probes.startup.periodSeconds }}
  failureThreshold: {{ .probes.startup.failureThreshold }}
readinessProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: {{ .probes.readiness.periodSeconds }}
  failureThreshold: {{ .probes.readiness.failureThreshold }}
livenessProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: {{ .probes.liveness.periodSeconds }}
  failureThreshold: {{ .probes.liveness.failureThreshold }}
  timeoutSeconds: {{ .probes.liveness.timeoutSeconds }}
{{- end }}

{{- define "tradeplane.lifecycle" -}}
lifecycle:
  preStop:
    # Keep serving while endpoints and Envoy drop this pod, then SIGTERM starts the drain.
    sleep:
      seconds: {{ .Values.shutdown.preStopSleepSeconds }}
{{- end }}

{{- define "tradeplane.podCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
serviceAccountName: {{ include "tradeplane.fullname" .root }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .values.nodeSelector | default .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations | default .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity | default .root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: {{ .root.Values.topologySpread.topologyKey }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "tradeplane.selectorLabels" (dict "root" .root "component" .component) | nindent 8 }}
{{- end }}
{{- end }}
