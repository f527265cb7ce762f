// Package kube writes the Kubernetes objects that run Kiln's pipelines on
// a cluster: one batch/v1 CronJob per pipeline, whose pod pulls the
// newest build of the image's version from the pipeline's registry (the
// catalog every builder pod shares), runs kiln build --if-changed, and
// pushes what it built. See docs/scaling.md.
//
// It writes YAML from its own small types, whose field names the tests
// hold to k8s.io/api's by decoding the output strictly into them; it does
// not talk to a cluster.
package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kiln-build/kiln/internal/run"
)

// Defaults of the exported objects, documented in docs/scaling.md.
const (
	// DefaultRegistrySecret is the Secret (type kubernetes.io/dockerconfigjson)
	// the pod reads registry credentials from, when it exists.
	DefaultRegistrySecret = "kiln-registry-auth"
	// DefaultRecipesDir is where the builder image holds the pipelines
	// file's directory.
	DefaultRecipesDir = "/recipes"
	// KVMResource is the KVM device plugin's resource: a pod that asks for
	// it is scheduled on a node with /dev/kvm, and gets the device.
	KVMResource = "devices.kubevirt.io/kvm"
	// MaxNameLength is the longest CronJob name Kubernetes accepts (the
	// Jobs it makes add 11 characters, and a Job name is a label value).
	MaxNameLength = 52

	startingDeadlineSeconds = 3600     // a run may start up to an hour late
	activeDeadlineSeconds   = 4 * 3600 // a run that takes over 4 hours is stopped
	imagesDir               = "/var/lib/kiln/images"
	cacheDir                = "/var/cache/kiln"
	secretDir               = "/run/secrets/kiln-registry"
)

// Pipeline is what the CronJob of one pipeline needs. Paths are inside
// the builder image.
type Pipeline struct {
	Name          string // the pipeline's name
	Schedule      string // 5-field cron or @hourly, @daily, ...
	TimeZone      string // IANA name; "" for the cluster's
	Recipe        string // the recipe's path in the builder image
	Vars          []string
	VarFiles      []string
	IfChanged     bool   // when = "inputs-changed"
	Image         string // the recipe's image name
	Version       string // and version
	Registry      string // oci://REGISTRY/REPOSITORY
	PlainHTTP     bool
	ContainerDisk bool
	KVM           bool
}

// Options are the cluster-wide settings of the export.
type Options struct {
	BuilderImage   string // the container image with kiln, its host tools and the recipes
	RegistrySecret string // default DefaultRegistrySecret
}

// CronJobs renders one CronJob per pipeline as a YAML stream, in order.
// The output depends only on its input.
func CronJobs(ps []Pipeline, o Options) ([]byte, error) {
	if o.RegistrySecret == "" {
		o.RegistrySecret = DefaultRegistrySecret
	}
	names := Names(ps)
	var out []byte
	for i, p := range ps {
		cj, err := cronJob(p, names[i], o)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
		}
		data, err := yaml.Marshal(cj)
		if err != nil {
			return nil, err
		}
		out = append(append(out, "---\n"...), data...)
	}
	return out, nil
}

var (
	nonName   = regexp.MustCompile(`[^a-z0-9-]+`)
	dashes    = regexp.MustCompile(`-{2,}`)
	scheduled = regexp.MustCompile(`^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+ \S+ \S+ \S+ \S+)$`)
)

// Names are the CronJob names of the pipelines: "kiln-" and the pipeline's
// name in lowercase DNS-label characters, at most MaxNameLength long. A
// name that had to be changed or shortened ends in 8 hex digits of the
// sha256 of the pipeline's own name, so that "Web" and "web" (pipeline
// names are unique) get distinct names and a pipeline always gets the
// same one.
func Names(ps []Pipeline) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		n := "kiln-" + strings.Trim(dashes.ReplaceAllString(nonName.ReplaceAllString(strings.ToLower(p.Name), "-"), "-"), "-")
		if len(n) > MaxNameLength || n != "kiln-"+p.Name {
			sum := sha256.Sum256([]byte(p.Name))
			suffix := "-" + hex.EncodeToString(sum[:4])
			if len(n) > MaxNameLength-len(suffix) {
				n = strings.TrimRight(n[:MaxNameLength-len(suffix)], "-")
			}
			n += suffix
		}
		out[i] = n
	}
	return out
}

// Script is the shell script the pod runs: pull the newest build of the
// version (when the registry has one), build if the inputs changed, push.
func Script(p Pipeline) string {
	var pull, build, push []string
	pull = []string{"kiln", "images", "pull", "--missing-ok"}
	push = []string{"kiln", "images", "push"}
	if p.PlainHTTP {
		pull = append(pull, "--plain-http")
		push = append(push, "--plain-http")
	}
	if p.ContainerDisk {
		push = append(push, "--containerdisk")
	}
	pull = append(pull, p.Registry+":"+p.Version)
	push = append(push, p.Image+"@"+p.Version, p.Registry)
	build = []string{"kiln", "build"}
	if p.IfChanged {
		build = append(build, "--if-changed")
	}
	for _, v := range p.Vars {
		build = append(build, "-var", v)
	}
	for _, f := range p.VarFiles {
		build = append(build, "-var-file", f)
	}
	build = append(build, p.Recipe)
	return strings.Join([]string{"set -eu", run.Quote(pull), run.Quote(build), run.Quote(push)}, "\n") + "\n"
}

func cronJob(p Pipeline, name string, o Options) (*CronJob, error) {
	if !scheduled.MatchString(p.Schedule) {
		return nil, fmt.Errorf("schedule %q: a CronJob takes a 5-field cron expression or @hourly, @daily, @weekly, @monthly or @yearly", p.Schedule)
	}
	if p.Registry == "" {
		return nil, fmt.Errorf("no registry: a CronJob's pod keeps nothing, so its builds go to the pipeline's registry; set registry = \"oci://REGISTRY/REPOSITORY\"")
	}
	labels := map[string]string{
		"app.kubernetes.io/name": "kiln", "app.kubernetes.io/component": "builder",
		"app.kubernetes.io/instance": name, "app.kubernetes.io/managed-by": "kiln",
	}
	c := Container{
		Name: "kiln", Image: o.BuilderImage, Command: []string{"/bin/sh", "-c", Script(p)},
		Env: []EnvVar{
			{Name: "KILN_IMAGES", Value: imagesDir}, {Name: "KILN_CACHE", Value: cacheDir},
			{Name: "REGISTRY_AUTH_FILE", Value: secretDir + "/.dockerconfigjson"},
		},
		VolumeMounts: []VolumeMount{
			{Name: "cache", MountPath: cacheDir}, {Name: "images", MountPath: imagesDir},
			{Name: "registry-auth", MountPath: secretDir, ReadOnly: true},
		},
		// Build steps run in new mount and PID namespaces and mmdebstrap
		// under unshare: the container needs the privileges to make them.
		SecurityContext: &SecurityContext{Privileged: true},
		Resources: Resources{
			Requests: map[string]string{"cpu": "2", "memory": "4Gi"},
			Limits:   map[string]string{"memory": "8Gi"},
		},
	}
	if p.KVM {
		c.Resources.Requests[KVMResource] = "1"
		c.Resources.Limits[KVMResource] = "1"
	}
	optional := true
	cj := &CronJob{
		APIVersion: "batch/v1", Kind: "CronJob",
		Metadata: ObjectMeta{Name: name, Labels: labels, Annotations: map[string]string{
			"kiln-pipeline": p.Name, "kiln-recipe": p.Recipe, "kiln-kvm": fmt.Sprint(p.KVM),
		}},
		Spec: CronJobSpec{
			Schedule: p.Schedule, TimeZone: p.TimeZone, ConcurrencyPolicy: "Forbid",
			StartingDeadlineSeconds: startingDeadlineSeconds, SuccessfulJobsHistoryLimit: 3, FailedJobsHistoryLimit: 3,
			JobTemplate: JobTemplate{
				Metadata: ObjectMeta{Labels: labels},
				Spec: JobSpec{
					BackoffLimit: 0, ActiveDeadlineSeconds: activeDeadlineSeconds,
					Template: PodTemplate{
						Metadata: ObjectMeta{Labels: labels},
						Spec: PodSpec{
							RestartPolicy: "Never", Containers: []Container{c},
							Volumes: []Volume{
								{Name: "cache", EmptyDir: &EmptyDir{}},
								{Name: "images", EmptyDir: &EmptyDir{}},
								{Name: "registry-auth", Secret: &SecretVolume{SecretName: o.RegistrySecret, Optional: &optional}},
							},
						},
					},
				},
			},
		},
	}
	return cj, nil
}
