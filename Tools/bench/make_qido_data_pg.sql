-- Fills an empty Tessera PostgreSQL index (migrated, no image sets) with the QIDO benchmark's data, the
-- layout of make_qido_data.py written straight as rows: studies of two series of 50 instances, 500
-- patients, study dates over ten years, CT and MR alternating. The number of instances is the setting
-- tessera.bench_instances (a multiple of 100), e.g.
--   psql "$URL" -c "SET tessera.bench_instances = 1000000" -f Tools/bench/make_qido_data_pg.sql
-- (psql runs -c and -f in one session). 1,000,000 instances take about a minute. One statement (a DO
-- block), so that the tests (PostgresQueryTests) run this same file through postgres-nio. Needs schema 6
-- or later (it fills the stored study summaries).
DO $$
DECLARE
    n integer := current_setting('tessera.bench_instances')::integer;
    studies integer := n / 100;
BEGIN
    -- What a writer of schema 6 says (PostgresIndex.lockStudies), or the instance rows are refused.
    PERFORM set_config('tessera.writer_schema', '6', true);
    INSERT INTO image_set(id, study_instance_uid, is_primary, state, latest_version, created_at, updated_at,
        patient_id, patient_name, patient_birth_date, patient_sex, study_date, study_time, accession_number, study_id,
        study_description, referring_physician_name, institution_name, conflicts, patient_name_key, referring_physician_name_key)
    SELECT md5('set' || k), '2.25.77.' || (1000000 + k), true, 'ACTIVE', 1, 1.7e9 + k, 1.7e9 + k,
        'P' || lpad((k % 500)::text, 5, '0'), f.name || '^GIVEN^P' || lpad((k % 500)::text, 5, '0'), '19700101', 'O',
        to_char(date '2015-01-01' + (k * 37) % 3650, 'YYYYMMDD'), '120000', 'A' || (1000000 + k), (1000000 + k)::text,
        'QIDO BENCHMARK', '', '', '[]', lower(f.name || '^GIVEN^P' || lpad((k % 500)::text, 5, '0')), ''
    FROM generate_series(0, studies - 1) AS k
    CROSS JOIN LATERAL (SELECT rpad((ARRAY['SMITH', 'JONES', 'BROWN', 'TAYLOR', 'WILSON', 'DAVIES', 'EVANS', 'THOMAS',
                                           'JOHNSON', 'ROBERTS'])[(k % 500) % 10 + 1], 8, 'X') AS name) f;

    INSERT INTO series(image_set_id, series_instance_uid, modality, series_number, series_description, body_part_examined,
        performed_start_date, performed_start_time)
    SELECT md5('set' || k), '2.25.77.' || (1000000 + k) || '.' || q, CASE WHEN k % 2 = 0 THEN 'CT' ELSE 'MR' END, q,
        'SERIES ' || q, '', '', ''
    FROM generate_series(0, studies - 1) AS k CROSS JOIN generate_series(1, 2) AS q;

    INSERT INTO instance(image_set_id, study_instance_uid, series_instance_uid, sop_instance_uid, sop_class_uid,
        transfer_syntax_uid, instance_number, rows, columns, bits_allocated, number_of_frames, blob_id, blob_size,
        frames_in_place, added_version, stored_at)
    SELECT md5('set' || k), '2.25.77.' || (1000000 + k), '2.25.77.' || (1000000 + k) || '.' || q,
        '2.25.77.' || (1000000 + k) || '.' || q || '.' || (1000 + j), '1.2.840.10008.5.1.4.1.1.7', '1.2.840.10008.1.2.1',
        j + 1, 16, 16, 8, NULL, md5('blob' || k || '.' || q || '.' || j) || md5('x' || k || '.' || q || '.' || j), 1000,
        true, 1, 1.7e9 + k
    FROM generate_series(0, studies - 1) AS k CROSS JOIN generate_series(1, 2) AS q CROSS JOIN generate_series(0, 49) AS j;

    -- The stored summaries a commit keeps (migration 6, PostgresIndex+StudySummary.swift), from the rows.
    UPDATE series x SET current_instances = c.n
    FROM (SELECT image_set_id, series_instance_uid, count(*) AS n FROM instance WHERE removed_version IS NULL
          GROUP BY image_set_id, series_instance_uid) c
    WHERE x.image_set_id = c.image_set_id AND x.series_instance_uid = c.series_instance_uid;
    UPDATE image_set s SET current_series = a.n_series, current_instances = a.n_instances, current_modalities = a.modalities,
        representative_instance_id = a.rep
    FROM (SELECT x.image_set_id, count(*) AS n_series, sum(x.current_instances) AS n_instances,
                 array_agg(DISTINCT x.modality) AS modalities,
                 (SELECT min(i.id) FROM instance i WHERE i.image_set_id = x.image_set_id AND i.removed_version IS NULL) AS rep
          FROM series x GROUP BY x.image_set_id) a
    WHERE s.id = a.image_set_id;
END $$;
