# Sourced by the benchmarks. start_orthanc DIR PORT [dicomweb]: writes DIR.json (SQLite index and
# storage in DIR, HTTP on loopback PORT, no DICOM port, no compression; with `dicomweb`, Debian's
# orthanc-dicomweb plugin under /dicom-web/), starts Debian's Orthanc with it (under `taskset -c
# $ORTHANC_CPUS` when set), sets orthanc_pid and returns once Orthanc answers. With ORTHANC_POSTGRESQL set
# to the members of a "PostgreSQL" object (Debian's orthanc-postgresql 4.0: Host, Port, Database,
# Username, EnableIndex, EnableStorage, ...), both of that package's plugins are loaded with it.
start_orthanc() {
    local dir=$1 port=$2 plugins='[]' dicomweb='' ready=/system
    if [ "${3:-}" = dicomweb ]; then
        plugins='["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"]'
        dicomweb=", \"DicomWeb\": { \"Enable\": true, \"Root\": \"/dicom-web/\", \"Host\": \"127.0.0.1:$port\" }"
        ready=/dicom-web/studies
    fi
    if [ -n "${ORTHANC_POSTGRESQL:-}" ]; then
        local pg='"/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so", "/usr/share/orthanc/plugins/libOrthancPostgreSQLStorage.so"'
        if [ "$plugins" = '[]' ]; then plugins="[$pg]"; else plugins="${plugins%]}, $pg]"; fi
        dicomweb="$dicomweb, \"PostgreSQL\": { $ORTHANC_POSTGRESQL }"
    fi
    # HttpThreadsCount 50 and ConcurrentJobs 2 are Orthanc's defaults, written out to be seen.
    cat > "$dir.json" <<JSON
{ "Name": "bench", "StorageDirectory": "$dir", "IndexDirectory": "$dir",
  "HttpPort": $port, "DicomServerEnabled": false, "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false, "HttpCompressionEnabled": false, "StorageCompression": false,
  "HttpThreadsCount": 50, "ConcurrentJobs": 2, "Plugins": $plugins$dicomweb }
JSON
    ${ORTHANC_CPUS:+taskset -c $ORTHANC_CPUS} Orthanc "$dir.json" > "$dir.log" 2>&1 &
    orthanc_pid=$!
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port$ready" >/dev/null && return 0; sleep 0.1; done
    echo "Orthanc did not answer on port $port (see $dir.log)" >&2
    return 1
}
