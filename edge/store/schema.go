package store

// Buckets are declared here, in one place, with the schema version. No other
// package imports bbolt.
const SchemaVersion = 1

var (
	bucketMeta       = []byte("meta")       // schema, edge id, epoch, chain head, acked seq
	bucketLog        = []byte("log")        // seq (8 bytes BE) -> stored record (outbox and replay source)
	bucketBatches    = []byte("batches")    // batch id -> batch state (owner: edge/line)
	bucketUnits      = []byte("units")      // gtin 0x00 serial -> unit state: the per-GTIN used-serial set
	bucketContainers = []byte("containers") // sscc -> container state
	bucketState      = []byte("state")      // small named values (active batch, counters)
	bucketChildren   = []byte("children")   // parent sscc 0x00 child id -> nothing: parent/child links

	allBuckets = [][]byte{bucketMeta, bucketLog, bucketBatches, bucketUnits, bucketContainers, bucketState, bucketChildren}
)

// Bucket names the line engine may use through Tx.Get/Put/Delete/Cursor.
type Bucket int

const (
	Batches Bucket = iota
	Units
	Containers
	State
	Children
)

func (b Bucket) name() []byte {
	switch b {
	case Batches:
		return bucketBatches
	case Units:
		return bucketUnits
	case Containers:
		return bucketContainers
	case State:
		return bucketState
	case Children:
		return bucketChildren
	}
	panic("store: unknown bucket")
}

// meta keys
var (
	keySchema  = []byte("schema")
	keyEdge    = []byte("edge")
	keyEpoch   = []byte("epoch")
	keyHeadSeq = []byte("head_seq")
	keyHead    = []byte("head_hash")
	keyAcked   = []byte("acked_seq")
)
