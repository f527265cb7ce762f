// Package boottest boots disk images in QEMU and judges them: one boot per
// firmware the image claims (UEFI under OVMF, BIOS under SeaBIOS), each on
// a throwaway copy with the guest test harness injected into its root
// filesystem, the base health checks (multi-user reached, no failed units,
// no kernel errors, the runner finished), the image's own tests, and the
// results as manifest records and JUnit XML.
//
// The build's test stage, `kiln test` (Smoke) and `kiln run` (RunTarget)
// all use it. It never changes the image it is given: every boot uses an
// overlay or a copy, and Run checks the image's sha256 before and after.
//
// It does not build images, compile recipe steps into tests (package
// components does) or start QEMU itself (internal/qemu does).
package boottest
