import ImageSetStore
import ObjectStorage
import PostgresIndex

/// The backends a test run asks for, from `TESSERA_TEST_INDEX` and `TESSERA_TEST_BLOBS`.
public enum TestBackends {}
