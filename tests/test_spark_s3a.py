"""The settings `gpuledger spark-backfill` gives a Spark session it starts for s3:// input
(`gpuledger.spark.s3a`): the connector matching PySpark's Hadoop, and s3a pointed at the store
the AWS_* variables name. The read itself is tested against S3Proxy in tests/test_spark.py."""

from __future__ import annotations

from pathlib import Path

from gpuledger.spark.s3a import hadoop_version, reads_s3, s3a_session_settings, s3a_settings


def test_local_input_needs_nothing() -> None:
    assert not reads_s3(["/data/tel", "file:///data/req"])
    assert s3a_session_settings(["/data/tel"], {"AWS_ENDPOINT_URL": "http://x:9000"}) == {}


def test_an_s3_compatible_endpoint_is_reached_path_style_and_secrets_stay_out() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:19000",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }
    settings = s3a_settings(env)
    assert settings == {
        "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:19000",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1",
    }
    assert not any("secret" in v or v == "key" for v in settings.values())


def test_aws_itself_needs_only_the_region_and_the_s3_endpoint_wins() -> None:
    assert s3a_settings({"AWS_DEFAULT_REGION": "us-east-2"}) == {
        "spark.hadoop.fs.s3a.endpoint.region": "us-east-2"
    }
    settings = s3a_settings(
        {"AWS_ENDPOINT_URL": "https://general", "AWS_ENDPOINT_URL_S3": "https://s3.example"}
    )
    assert settings["spark.hadoop.fs.s3a.endpoint"] == "https://s3.example"
    assert "spark.hadoop.fs.s3a.connection.ssl.enabled" not in settings


def test_the_connector_matches_pysparks_hadoop(tmp_path: Path) -> None:
    version = hadoop_version()
    assert version is not None and version.count(".") == 2
    settings = s3a_session_settings(["s3://archive/tel/"], {})
    assert settings == {"spark.jars.packages": f"org.apache.hadoop:hadoop-aws:{version}"}
    (tmp_path / "hadoop-client-api-3.4.1.jar").touch()
    (tmp_path / "spark-core_2.13-4.0.0.jar").touch()
    assert hadoop_version(tmp_path) == "3.4.1"
    assert hadoop_version(tmp_path / "missing") is None


def test_the_package_can_be_named_or_left_out() -> None:
    named = {"GPULEDGER_SPARK_S3A_PACKAGES": "org.apache.hadoop:hadoop-aws:3.4.1"}
    assert s3a_session_settings(["s3a://a/b"], named)["spark.jars.packages"].endswith("3.4.1")
    on_class_path = {"GPULEDGER_SPARK_S3A_PACKAGES": ""}
    assert "spark.jars.packages" not in s3a_session_settings(["s3://a/b"], on_class_path)
