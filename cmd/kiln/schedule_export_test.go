package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// kiln schedule --export kubernetes prints examples/pipelines/cluster.hcl
// as CronJobs that decode strictly into k8s.io/api's batch/v1 types, with
// the recipe's image and version in the script, paths inside the builder
// image, and /dev/kvm asked for by the pipeline that wants it.
func TestScheduleExportKubernetes(t *testing.T) {
	code, out, errOut := runKiln(t, "schedule", "--export", "kubernetes", "--context", "../../examples",
		"--image", "registry.example:5000/kiln-builder:0.3.0", "../../examples/pipelines/cluster.hcl")
	require.Equal(t, 0, code, errOut)
	docs := bytes.Split([]byte(out), []byte("---\n"))[1:]
	require.Len(t, docs, 2)
	var jobs []batchv1.CronJob
	for _, d := range docs {
		var cj batchv1.CronJob
		require.NoError(t, yaml.UnmarshalStrict(d, &cj), string(d))
		jobs = append(jobs, cj)
	}
	require.Equal(t, "kiln-nightly-minimal", jobs[0].Name)
	require.Equal(t, "Europe/Berlin", *jobs[0].Spec.TimeZone)
	c := jobs[0].Spec.JobTemplate.Spec.Template.Spec.Containers[0]
	require.Equal(t, "registry.example:5000/kiln-builder:0.3.0", c.Image)
	require.Contains(t, c.Command[2], "kiln build --if-changed /recipes/debian-minimal.hcl\n")
	require.Contains(t, c.Command[2], "kiln images push debian-minimal@1.0.0 oci://registry.example:5000/images/debian-minimal\n")
	require.Contains(t, c.Resources.Limits, corev1.ResourceName("devices.kubevirt.io/kvm"))
	c = jobs[1].Spec.JobTemplate.Spec.Template.Spec.Containers[0]
	require.Contains(t, c.Command[2], "kiln build -var suite=bookworm /recipes/debian-minimal.hcl\n")
	require.NotContains(t, c.Resources.Limits, corev1.ResourceName("devices.kubevirt.io/kvm"))
	require.True(t, *c.SecurityContext.Privileged)

	// Without --context the recipe is outside the directory the image holds;
	// a pipeline without a registry cannot run on a cluster.
	code, _, errOut = runKiln(t, "schedule", "--export", "kubernetes", "../../examples/pipelines/cluster.hcl")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `pipeline "nightly-minimal": recipe `)
	require.Contains(t, errOut, "is outside")
	code, _, errOut = runKiln(t, "schedule", "--export", "kubernetes", "--context", "../../examples", "../../examples/pipelines/nightly.hcl")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `nightly.hcl:8:1: pipeline "nightly-minimal": has no registry`)
	code, _, errOut = runKiln(t, "schedule", "--export", "nomad", "../../examples/pipelines/cluster.hcl")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "the one format is kubernetes")
}

// An optional registry Secret that is absent leaves REGISTRY_AUTH_FILE
// naming no file: that is no credentials, not an error.
func TestMissingAuthFileIsNoCredentials(t *testing.T) {
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(t.TempDir(), "absent", ".dockerconfigjson"))
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	_, err := os.Stat(os.Getenv("REGISTRY_AUTH_FILE"))
	require.True(t, os.IsNotExist(err))
	code, _, errOut := runKiln(t, "images", "pull", "--missing-ok", "--images", t.TempDir(), "oci://127.0.0.1:1/none:1.0.0")
	require.Equal(t, 1, code)
	require.NotContains(t, errOut, "credentials in")
	require.Contains(t, errOut, "127.0.0.1:1")
}
