{{/*
uic.name is the app's name: the chart's, or nameOverride.
*/}}
{{- define "uic.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
uic.fullname names the objects: fullnameOverride, else the release's name
when it holds the app's name (release upgrade-image-cleanup gives
upgrade-image-cleanup), else <release>-<name>. The metrics Service adds
"-metrics", so it is cut to 55 characters.
*/}}
{{- define "uic.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "uic.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 55 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
uic.labels are on every object: the app and the release, so two releases'
objects are told apart.
*/}}
{{- define "uic.labels" -}}
app.kubernetes.io/name: {{ include "uic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
uic.selectorLabels select the controller's pods (the Deployment, the
metrics Service, the anti-affinity, the ServiceMonitor): the release's
own, never another release's in the same namespace. They never change with
the chart's version: a Deployment's selector cannot be changed in place.
*/}}
{{- define "uic.selectorLabels" -}}
{{ include "uic.labels" . }}
app.kubernetes.io/component: controller
{{- end -}}

{{/*
uic.image is the controller's image: repository@digest when a digest is
set, else repository:tag.
*/}}
{{- define "uic.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (required "image.tag or image.digest is required" .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
uic.removerImage is --remover-image: remover.image, else the controller's
own image (it holds image-remover).
*/}}
{{- define "uic.removerImage" -}}
{{- .Values.remover.image | default (include "uic.image" .) -}}
{{- end -}}

{{/*
uic.metricsServiceName names the metrics Service.
*/}}
{{- define "uic.metricsServiceName" -}}
{{- printf "%s-metrics" (include "uic.fullname" .) -}}
{{- end -}}

{{/*
uic.leaseNamespace is where the leader-election Lease lives: the value,
else the release's namespace (the pod's $POD_NAMESPACE, which the binary
uses when --leader-elect-namespace is not given).
*/}}
{{- define "uic.leaseNamespace" -}}
{{- .Values.leaderElection.namespace | default .Release.Namespace -}}
{{- end -}}

{{/*
uic.leaseInRole is "true" when the Lease is granted by the Role in
.Values.namespace (the Lease lives there), so it needs no Role of its own.
*/}}
{{- define "uic.leaseInRole" -}}
{{- if and .Values.leaderElection.enabled (eq (include "uic.leaseNamespace" .) .Values.namespace) -}}
true
{{- end -}}
{{- end -}}

{{/*
uic.arg quotes one --flag=value argument for a YAML list: a JSON string is
a YAML scalar whatever the value holds (colons, #, quotes, brackets).
*/}}
{{- define "uic.arg" -}}
{{- toJson . -}}
{{- end -}}

{{/*
uic.mergedLabels: the chart's labels plus a feature's extra labels (the
chart's win on a clash), as YAML. Call with (dict "ctx" $ "extra" labels).
*/}}
{{- define "uic.mergedLabels" -}}
{{- $own := include "uic.labels" .ctx | fromYaml -}}
{{- toYaml (merge $own (.extra | default dict)) -}}
{{- end -}}

{{/*
uic.seconds is a Go duration of the schema's form (numbers with the units
ns, us, µs, ms, s, m, h) in seconds.
*/}}
{{- define "uic.seconds" -}}
{{- $units := dict "ns" 1e-9 "us" 1e-6 "µs" 1e-6 "ms" 1e-3 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" . -1 -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . -}}
{{- $total = addf $total (mulf (float64 $n) (get $units (trimPrefix $n .))) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
uic.bytes is a quantity of the schema's form (a number with a suffix k M
G T P E, Ki ... Ei, or an exponent e<n>) in bytes, as a float: close
enough to compare with the binary's 8Pi bound.
*/}}
{{- define "uic.bytes" -}}
{{- $re := "^\\+?([0-9]*\\.?[0-9]*)(.*)$" -}}
{{- $bytes := float64 (regexReplaceAll $re . "${1}") -}}
{{- $suffix := regexReplaceAll $re . "${2}" -}}
{{- $multipliers := dict "" 1.0 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 -}}
{{- if hasKey $multipliers $suffix -}}
{{- $bytes = mulf $bytes (get $multipliers $suffix) -}}
{{- else -}}
{{- $exp := atoi (trimPrefix "+" (substr 1 -1 $suffix)) -}}
{{- range until (min 400 (max $exp (sub 0 $exp)) | int) -}}
{{- if gt $exp 0 -}}
{{- $bytes = mulf $bytes 10.0 -}}
{{- else -}}
{{- $bytes = divf $bytes 10.0 -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $bytes -}}
{{- end -}}

{{/*
uic.checks fails the render on values that would install a controller
that cannot work.
*/}}
{{- define "uic.checks" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas > 1 needs leaderElection.enabled: without the Lease every replica would work on the same Upgrades" -}}
{{- end -}}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.health.port)) -}}
{{- fail "metrics.port and health.port must differ: each is a server of its own" -}}
{{- end -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- if ge (float64 (include "uic.seconds" .Values.shutdownTimeout)) (float64 $grace) -}}
{{- fail (printf "shutdownTimeout %s must be below terminationGracePeriodSeconds %d: the kubelet kills the controller %d s after SIGTERM, before the items in flight are done" .Values.shutdownTimeout $grace $grace) -}}
{{- end -}}
{{- if kindIs "string" .Values.imageFsThreshold -}}
{{- if gt (float64 (include "uic.bytes" .Values.imageFsThreshold)) 9007199254740992.0 -}}
{{- fail (printf "imageFsThreshold %s: must be at most 8Pi (the controller and the remover refuse more)" .Values.imageFsThreshold) -}}
{{- end -}}
{{- end -}}
{{- /*
The controller refuses a burst below a second's worth of requests
(--kube-api-burst under --kube-api-qps rounded up), which the schema cannot
express: it compares no two values. An unset value is the binary's
default, 100/s or 200, which is never written; hack/helm's
TestChartAgreesWithTheBinary fails when these copies are not the binary's.
*/ -}}
{{- $qps := 100.0 -}}
{{- $qpsShown := "unset (the controller's 100)" -}}
{{- if not (kindIs "invalid" .Values.kubeApiQps) -}}
{{- $qps = float64 .Values.kubeApiQps -}}
{{- $qpsShown = toString $qps -}}
{{- end -}}
{{- $burst := 200 -}}
{{- $burstShown := "unset (the controller's 200)" -}}
{{- if not (kindIs "invalid" .Values.kubeApiBurst) -}}
{{- $burst = int .Values.kubeApiBurst -}}
{{- $burstShown = toString $burst -}}
{{- end -}}
{{- if lt (float64 $burst) (ceil $qps) -}}
{{- fail (printf "kubeApiBurst %s must be at least kubeApiQps %s rounded up, %v: the controller refuses a burst below a second's worth of requests" $burstShown $qpsShown (ceil $qps)) -}}
{{- end -}}
{{- end -}}

{{/*
uic.serviceAccountUser is the controller's user name as the API server
sees its token, which the removal Jobs' admission policy matches.
*/}}
{{- define "uic.serviceAccountUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "uic.fullname" .) -}}
{{- end -}}

{{/*
uic.removalJobPolicyName names the removal Jobs' ValidatingAdmissionPolicy,
its binding and its parameters' ConfigMap.
*/}}
{{- define "uic.removalJobPolicyName" -}}
{{- printf "%s-removal-jobs" (include "uic.fullname" .) -}}
{{- end -}}

{{/*
uic.removerCommand is --remover-command's words joined by commas:
remover.command, else the binary's default (cleanup.RemoverPath; a test in
hack/helm compares it with the binary's -h). The words hold no comma (the
schema refuses one, and the binary splits the flag on commas).
*/}}
{{- define "uic.removerCommand" -}}
{{- .Values.remover.command | default (list "/usr/local/bin/image-remover") | join "," -}}
{{- end -}}
