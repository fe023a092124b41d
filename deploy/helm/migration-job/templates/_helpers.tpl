{{/* The chart's name, for labels. */}}
{{- define "migration-job.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every resource: 52 characters at most, so that a Job's name with its
"-rNNN" revision suffix stays a valid label value (63).
*/}}
{{- define "migration-job.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels that select the job's resources. */}}
{{- define "migration-job.selectorLabels" -}}
app.kubernetes.io/name: {{ include "migration-job.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "migration-job.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "migration-job.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: migrations
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The image reference: image.tag, else the chart's appVersion. */}}
{{- define "migration-job.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "migration-job.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "migration-job.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret that holds the URL (or the fleet's targets) and its key. */}}
{{- define "migration-job.secretName" -}}
{{- if eq .Values.mode "fleet" }}
{{- if .Values.fleet.targets.createSecret.enabled }}
{{- printf "%s-targets" (include "migration-job.fullname" .) }}
{{- else }}
{{- required "fleet.targets.existingSecret: name the Secret that holds the targets, or set fleet.targets.createSecret.enabled" .Values.fleet.targets.existingSecret }}
{{- end }}
{{- else if .Values.database.createSecret.enabled }}
{{- printf "%s-database" (include "migration-job.fullname" .) }}
{{- else }}
{{- required "database.existingSecret: name the Secret that holds the database URL, or set database.createSecret.enabled" .Values.database.existingSecret }}
{{- end }}
{{- end }}

{{- define "migration-job.secretKey" -}}
{{- if eq .Values.mode "fleet" }}{{ .Values.fleet.targets.secretKey }}{{ else }}{{ .Values.database.secretKey }}{{ end }}
{{- end }}

{{/*
Annotations of what the job needs before it runs (its Secret, its ServiceAccount): in hook and
argocd modes they are hooks too, created just before the job (a lower weight or wave), since a
chart's ordinary resources are created only after the pre-install hooks. Helm deletes
hook-succeeded hooks once every hook of the event succeeded, so the Job has them while it runs.
*/}}
{{- define "migration-job.prerequisiteAnnotations" -}}
{{- if eq .Values.mode "hook" }}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ sub (int .Values.hook.weight) 1 | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- else if eq .Values.mode "argocd" }}
argocd.argoproj.io/hook: PreSync
argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
argocd.argoproj.io/sync-wave: "-1"
{{- end }}
{{- end }}

{{/*
The exit codes of the README's exit-code table, by its "retry helps?" column. A test renders
the chart and fails when these and the table disagree.
*/}}
{{- define "migration-job.exitCodesNoRetry" -}}
[1, 2, 4, 6, 7, 10, 11, 12]
{{- end }}
{{- define "migration-job.exitCodesRetry" -}}
[3, 5, 9, 13, 130, 143]
{{- end }}

{{/*
Fail at once on the codes that a retry cannot fix, count the others against the retry limit,
and ignore disruptions (a drained node, a preempted pod).
*/}}
{{- define "migration-job.podFailurePolicy" -}}
rules:
  - action: Ignore
    onPodConditions:
      - type: DisruptionTarget
  - action: FailJob
    onExitCodes:
      containerName: migrate
      operator: In
      values: {{ include "migration-job.exitCodesNoRetry" . }}
  - action: Count
    onExitCodes:
      containerName: migrate
      operator: In
      values: {{ include "migration-job.exitCodesRetry" . }}
{{- end }}
