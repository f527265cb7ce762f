package kube

// The subset of Kubernetes' types the export writes, with k8s.io/api's
// JSON field names (the tests decode the output strictly into those).

type CronJob struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   ObjectMeta  `json:"metadata"`
	Spec       CronJobSpec `json:"spec"`
}

type ObjectMeta struct {
	Name        string            `json:"name,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type CronJobSpec struct {
	Schedule                   string      `json:"schedule"`
	TimeZone                   string      `json:"timeZone,omitempty"`
	ConcurrencyPolicy          string      `json:"concurrencyPolicy"`
	StartingDeadlineSeconds    int64       `json:"startingDeadlineSeconds"`
	SuccessfulJobsHistoryLimit int32       `json:"successfulJobsHistoryLimit"`
	FailedJobsHistoryLimit     int32       `json:"failedJobsHistoryLimit"`
	JobTemplate                JobTemplate `json:"jobTemplate"`
}

type JobTemplate struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     JobSpec    `json:"spec"`
}

type JobSpec struct {
	BackoffLimit          int32       `json:"backoffLimit"`
	ActiveDeadlineSeconds int64       `json:"activeDeadlineSeconds"`
	Template              PodTemplate `json:"template"`
}

type PodTemplate struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     PodSpec    `json:"spec"`
}

type PodSpec struct {
	RestartPolicy string      `json:"restartPolicy"`
	Containers    []Container `json:"containers"`
	Volumes       []Volume    `json:"volumes"`
}

type Container struct {
	Name            string           `json:"name"`
	Image           string           `json:"image"`
	Command         []string         `json:"command"`
	Env             []EnvVar         `json:"env"`
	VolumeMounts    []VolumeMount    `json:"volumeMounts"`
	SecurityContext *SecurityContext `json:"securityContext,omitempty"`
	Resources       Resources        `json:"resources"`
}

type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

type SecurityContext struct {
	Privileged bool `json:"privileged"`
}

type Resources struct {
	Requests map[string]string `json:"requests,omitempty"`
	Limits   map[string]string `json:"limits,omitempty"`
}

type Volume struct {
	Name     string        `json:"name"`
	EmptyDir *EmptyDir     `json:"emptyDir,omitempty"`
	Secret   *SecretVolume `json:"secret,omitempty"`
}

type EmptyDir struct{}

type SecretVolume struct {
	SecretName string `json:"secretName"`
	Optional   *bool  `json:"optional,omitempty"`
}
