"""The stream between ingest and processing: stored readings, partitioned by patient, each partition consumed in
order by one owner at a time. ``StoreStream`` (the embedded default) keeps the queue in the store itself."""

from vigil.stream.embedded import MAX_BACKLOG, StoreStream, StreamBatch, stream_for_url

__all__ = ["MAX_BACKLOG", "StoreStream", "StreamBatch", "stream_for_url"]
