// belay's note on this package (the package comment is upstream's, in
// another file of it).
//
// Its job: a pool of growable byte buffers.
//
// Who owns it: the gnet project. It is gnet v2.9.7 as released, vendored
// under third_party/gnet and used through a replace directive in belay's
// go.mod; belay changes it only through the patch third_party/gnet/
// BELAY_PATCH.md lists (the doc.go files are belay's too), and a change
// that is not in that list is a change to send upstream or to leave out.
// Concurrency is gnet's: each event loop owns its connections; other
// goroutines reach a loop only through its task queue.
//
// What it must never import: belay's own packages (github.com/belaydb/
// belay/...): the dependency runs one way, belay to gnet, so the patched
// copy stays a drop-in for the released module.

package bytebuffer
