package kube

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

var pipelines = []Pipeline{
	{Name: "nightly-web", Schedule: "0 3 * * *", TimeZone: "Europe/Berlin", Recipe: "/recipes/web.hcl", IfChanged: true,
		Image: "web", Version: "1.2.0", Registry: "oci://registry.example:5000/images/web", KVM: true},
	{Name: "Weekly_Full.Build", Schedule: "@weekly", Recipe: "/recipes/sub/full.hcl", Vars: []string{"suite=trixie", "note=it's"},
		VarFiles: []string{"/recipes/prod.vars.hcl"}, Image: "full", Version: "2.0.0", Registry: "oci://127.0.0.1:5000/full",
		PlainHTTP: true, ContainerDisk: true},
	{Name: strings.Repeat("a-very-long-pipeline-name-", 3), Schedule: "*/30 * * * *", Recipe: "/recipes/x.hcl", IfChanged: true,
		Image: "x", Version: "1.0.0", Registry: "oci://registry.example/x"},
}

// splitDocs splits a YAML stream into its documents.
func splitDocs(t *testing.T, data []byte) [][]byte {
	t.Helper()
	require.True(t, bytes.HasPrefix(data, []byte("---\n")))
	parts := bytes.Split(data, []byte("---\n"))[1:]
	return parts
}

// The export decodes strictly (no unknown field) into k8s.io/api's
// batch/v1 CronJob, one per pipeline, with everything a nightly Kiln build
// on a cluster needs: the schedule and its time zone, Forbid, a starting
// deadline, history limits, Never restarting, the script that pulls,
// builds and pushes, emptyDir cache and catalog, the registry Secret, and
// /dev/kvm through the KVM device plugin (else privileged TCG). Names are
// DNS labels within 52 characters.
func TestCronJobsDecodeStrictly(t *testing.T) {
	data, err := CronJobs(pipelines, Options{BuilderImage: "registry.example:5000/kiln-builder:0.3.0"})
	require.NoError(t, err)
	again, err := CronJobs(pipelines, Options{BuilderImage: "registry.example:5000/kiln-builder:0.3.0"})
	require.NoError(t, err)
	require.Equal(t, string(data), string(again), "deterministic")

	docs := splitDocs(t, data)
	require.Len(t, docs, len(pipelines))
	var jobs []batchv1.CronJob
	for i, doc := range docs {
		var cj batchv1.CronJob
		require.NoError(t, yaml.UnmarshalStrict(doc, &cj), "document %d:\n%s", i, doc)
		jobs = append(jobs, cj)
	}
	for i, cj := range jobs {
		p := pipelines[i]
		require.Equal(t, "batch/v1", cj.APIVersion)
		require.Equal(t, "CronJob", cj.Kind)
		require.LessOrEqual(t, len(cj.Name), 52)
		require.Empty(t, validation.IsDNS1123Label(cj.Name), cj.Name)
		require.Equal(t, p.Name, cj.Annotations["kiln-pipeline"])
		s := cj.Spec
		require.Equal(t, p.Schedule, s.Schedule)
		if p.TimeZone != "" {
			require.Equal(t, p.TimeZone, *s.TimeZone)
		} else {
			require.Nil(t, s.TimeZone)
		}
		require.Equal(t, batchv1.ForbidConcurrent, s.ConcurrencyPolicy)
		require.Equal(t, int64(3600), *s.StartingDeadlineSeconds)
		require.Equal(t, int32(3), *s.SuccessfulJobsHistoryLimit)
		require.Equal(t, int32(3), *s.FailedJobsHistoryLimit)
		require.Equal(t, int32(0), *s.JobTemplate.Spec.BackoffLimit)
		pod := s.JobTemplate.Spec.Template.Spec
		require.Equal(t, corev1.RestartPolicyNever, pod.RestartPolicy)
		require.Len(t, pod.Containers, 1)
		c := pod.Containers[0]
		require.Equal(t, "registry.example:5000/kiln-builder:0.3.0", c.Image)
		require.Equal(t, []string{"/bin/sh", "-c", Script(p)}, c.Command)
		require.True(t, *c.SecurityContext.Privileged)
		mounts := map[string]string{}
		for _, m := range c.VolumeMounts {
			mounts[m.Name] = m.MountPath
		}
		require.Equal(t, map[string]string{"cache": "/var/cache/kiln", "images": "/var/lib/kiln/images", "registry-auth": "/run/secrets/kiln-registry"}, mounts)
		require.NotNil(t, pod.Volumes[0].EmptyDir)
		require.NotNil(t, pod.Volumes[1].EmptyDir)
		require.Equal(t, "kiln-registry-auth", pod.Volumes[2].Secret.SecretName)
		kvm, ok := c.Resources.Limits[corev1.ResourceName("devices.kubevirt.io/kvm")]
		require.Equal(t, p.KVM, ok)
		if p.KVM {
			require.True(t, kvm.Equal(resource.MustParse("1")))
		}
		require.True(t, c.Resources.Requests.Memory().Equal(resource.MustParse("4Gi")))
	}
	require.Equal(t, "kiln-nightly-web", jobs[0].Name)
	require.Regexp(t, `^kiln-weekly-full-build-[0-9a-f]{8}$`, jobs[1].Name)
	require.Regexp(t, `^kiln-a-very-long-pipeline-name-a-very-long-[0-9a-f]{8}$`, jobs[2].Name, "shortened, without a dash before the suffix")
	require.Len(t, jobs[2].Name, 51)
}

// The script pulls the newest build of the version (if any), builds with
// --if-changed and the pipeline's variables, and pushes; its arguments
// are quoted for the shell.
func TestScript(t *testing.T) {
	require.Equal(t, `set -eu
kiln images pull --missing-ok oci://registry.example:5000/images/web:1.2.0
kiln build --if-changed /recipes/web.hcl
kiln images push web@1.2.0 oci://registry.example:5000/images/web
`, Script(pipelines[0]))
	require.Equal(t, `set -eu
kiln images pull --missing-ok --plain-http oci://127.0.0.1:5000/full:2.0.0
kiln build -var suite=trixie -var 'note=it'\''s' -var-file /recipes/prod.vars.hcl /recipes/sub/full.hcl
kiln images push --plain-http --containerdisk full@2.0.0 oci://127.0.0.1:5000/full
`, Script(pipelines[1]))
}

func TestNamesStayDistinct(t *testing.T) {
	names := Names([]Pipeline{{Name: "web"}, {Name: "Web"}, {Name: "w.e.b"}, {Name: "w-e-b"}})
	require.Equal(t, "kiln-web", names[0])
	seen := map[string]bool{}
	for _, n := range names {
		require.False(t, seen[n], n)
		seen[n] = true
		require.Empty(t, validation.IsDNS1123Label(n), n)
	}
}

func TestCronJobsRefuse(t *testing.T) {
	_, err := CronJobs([]Pipeline{{Name: "x", Schedule: "@every 10m", Registry: "oci://r/x"}}, Options{})
	require.ErrorContains(t, err, "5-field cron expression")
	_, err = CronJobs([]Pipeline{{Name: "x", Schedule: "0 3 * * *"}}, Options{})
	require.ErrorContains(t, err, "no registry")
}
