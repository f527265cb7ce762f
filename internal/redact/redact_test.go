package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStringAndEscapedForms(t *testing.T) {
	r := New("(sensitive)", "s3cr<et>&\"x", "abc", "hunter22")
	require.False(t, r.Empty())
	require.Equal(t, "pw=(sensitive) and (sensitive).", r.String("pw=s3cr<et>&\"x and hunter22."))
	// Too short to redact from free text.
	require.Equal(t, "abc", r.String("abc"))
	// As encoding/json and encoding/xml spell it.
	j, _ := json.Marshal(map[string]string{"v": "s3cr<et>&\"x"})
	require.Equal(t, `{"v":"(sensitive)"}`, string(r.Bytes(j)))
	require.Equal(t, "<o>(sensitive)</o>", r.String("<o>s3cr&lt;et&gt;&amp;&#34;x</o>"))
	var nilR *Redactor
	require.True(t, nilR.Empty())
	require.Equal(t, "hunter22", nilR.String("hunter22"))
	require.Nil(t, New("(sensitive)", "ab", ""))
}

func TestOverlappingSecrets(t *testing.T) {
	r := New("*", "abcdef", "defghi")
	require.Equal(t, "x*y", r.String("xabcdefghiy"))
	require.Equal(t, "**", r.String("abcdefdefghi"))
}

// Every way of cutting a stream into writes gives the redacted text.
func TestWriterAcrossWrites(t *testing.T) {
	r := New("[x]", "password1", "pass-word-two")
	text := "a password1 b pass-word-two c password1password1 pass-word-tw"
	want := r.String(text)
	require.Equal(t, "a [x] b [x] c [x][x] pass-word-tw", want)
	for size := 1; size <= len(text); size++ {
		var out bytes.Buffer
		w := r.Writer(&out)
		for i := 0; i < len(text); i += size {
			end := min(i+size, len(text))
			n, err := w.Write([]byte(text[i:end]))
			require.NoError(t, err)
			require.Equal(t, end-i, n)
			require.NotContains(t, out.String(), "password1", "chunk size %d", size)
		}
		require.NoError(t, w.Close())
		require.Equal(t, want, out.String(), "chunk size %d", size)
	}
}

func TestWriterWithoutSecretsPassesThrough(t *testing.T) {
	var out bytes.Buffer
	var r *Redactor
	w := r.Writer(&out)
	fmt.Fprint(w, "hello")
	require.Equal(t, "hello", out.String())
	require.NoError(t, w.Close())
}

func TestErrorKeepsChain(t *testing.T) {
	r := New("(sensitive)", "topsecret")
	base := os.ErrNotExist
	err := r.Error(fmt.Errorf("reading topsecret: %w", base))
	require.Equal(t, "reading (sensitive): file does not exist", err.Error())
	require.True(t, errors.Is(err, os.ErrNotExist))
	plain := errors.New("nothing here")
	require.Equal(t, plain, r.Error(plain))
}

func TestFile(t *testing.T) {
	r := New("(sensitive)", "topsecret")
	dir := t.TempDir()
	p := filepath.Join(dir, "log")
	require.NoError(t, os.WriteFile(p, []byte("a topsecret b\n"), 0o640))
	require.NoError(t, r.File(p))
	data, _ := os.ReadFile(p)
	require.Equal(t, "a (sensitive) b\n", string(data))
	fi, _ := os.Stat(p)
	require.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
	require.NoError(t, r.File(filepath.Join(dir, "missing")))
	entries, _ := os.ReadDir(dir)
	require.Len(t, entries, 1, "no temporary file is left")
	require.False(t, strings.Contains(string(data), "topsecret"))
}
