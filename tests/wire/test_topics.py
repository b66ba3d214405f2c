import pytest

from wire import DataTopic, StatusTopic, TopicError, data_subscription


def test_data_topic_round_trip() -> None:
    topic = DataTopic("de-munich", "de-munich-cnc-01")
    assert str(topic) == "tele/v1/de-munich/de-munich-cnc-01"
    assert DataTopic.parse(str(topic)) == topic


@pytest.mark.parametrize("bad", ["tele/v2/s/d", "tele/v1/s", "tele/v1/s/d/x", "tele/v1/s/+", "x/v1/s/d"])
def test_bad_data_topics(bad: str) -> None:
    with pytest.raises(TopicError):
        DataTopic.parse(bad)


def test_status_topic_and_shared_subscription() -> None:
    assert StatusTopic.parse("status/v1/de-munich/gw-1") == StatusTopic("de-munich", "gw-1")
    assert data_subscription("ingest") == "$share/ingest/tele/v1/+/+"
    assert data_subscription() == "tele/v1/+/+"
