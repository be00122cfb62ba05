"""ALS on Spark (`pyspark.ml.recommendation.ALS`), exported as an ordinary tastemaker model.

`SparkALS(config).fit(source)` reads Parquet/CSV files (local, HDFS, S3 — anything Spark reads),
a Spark DataFrame or `Interactions`, trains on Spark, pulls the factors back to the driver and
returns a fitted model of a built-in kind, so that `save()` writes the usual bundle and
`Recommender.load(dir)` gives a model that evaluates, recommends, publishes and serves unchanged
(no Spark needed to load it):

- ``feedback="implicit"`` (Hu, Koren & Volinsky 2008) → an `als` model
  (`tastemaker.models.implicit_mf.ALS`): scores x_uᵀy_i. Spark gets the same X as the
  single-node model — `threshold` and `weighting` exactly as `weighting.interaction_matrix`
  applies them — and the same confidence c_ui = 1 + alpha·X_ui.
- ``feedback="explicit"`` (ratings; Zhou et al. 2008) → an unbiased factor model r̂ = x_uᵀy_i,
  saved as the `nmf` model with ``biased = False`` — the built-in model whose prediction rule is
  exactly Spark's (and whose regularisation is scaled by rating counts like Spark's; with
  ``nonnegative = True`` it is literally NMF trained by ALS). Pairs Spark cannot score (unknown
  or unrated users and items) get μ + b_u or μ + b_i from baseline biases fitted on the driver,
  as every rating model here does, where Spark's own `transform` would give NaN.

Regularisation. Spark scales λ by the number of ratings of the user (or item) being solved for
("ALS-WR", Zhou et al. 2008): λ·n_u‖x_u‖² and λ·n_i‖y_i‖², also for implicit feedback, where n_u
counts the user's observed entries. `implicit` (our `als`) uses one λ for every row. No regParam
makes the two penalties equal for every user; `regularization` (λ in the `als` sense) becomes
Spark's ``regParam = λ / rms(n_u)``, the root-mean-square number of observed entries per user, so
the penalties agree for a user of that activity. The rule was chosen on a validation carve-out of
MovieLens 100K u1.base (user holdout 20 %, seed 0; NDCG@10, mean of seeds 0–2, `als` at λ = 22.5:
0.2750) among λ divided by the per-user RMS (0.2744), mean (0.2713), and the mean over user and
item rows (0.2578, one seed); 0.8 × the mean-rule regParam gave 0.2750, 0.6 × gave 0.2712, 1.25 ×
0.2617. Give ``reg_param`` to pass Spark's own value instead. The exported model's config records
the λ equivalent of the regParam used.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
from pydantic import Field, model_validator

from tastemaker.config import StrictConfig
from tastemaker.data.interactions import Interactions
from tastemaker.data.vocabulary import Vocabulary
from tastemaker.errors import ConfigError, DataError, DataWarning
from tastemaker.models.base import Recommender
from tastemaker.models.implicit_mf import ALS, ALSConfig
from tastemaker.models.weighting import Weighting
from tastemaker.spark.session import SparkSettings, get_spark

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

Feedback = Literal["implicit", "explicit"]
Duplicates = Literal["last", "first", "mean", "sum", "keep", "error"]

DEFAULT_EXPLICIT_REG_PARAM = 0.12
"""Spark regParam for ratings when neither `reg_param` nor `regularization` is given (see `SparkALSConfig`)."""

_CANONICAL_INT = r"^-?(0|[1-9][0-9]{0,17})$"


class SparkALSConfig(StrictConfig):
    """Settings of `SparkALS`. The implicit defaults are those of the single-node `als` model.

    For ratings (``feedback="explicit"``) the default regParam is `DEFAULT_EXPLICIT_REG_PARAM`:
    validation RMSE 0.9292 on a carve-out of MovieLens 100K u1.base (random 20 %, seed 0) at the
    default factors and iterations, the best of regParam 0.03, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2,
    0.3 (0.1: 0.9314, 0.15: 0.9302).
    """

    feedback: Feedback = "implicit"
    """``implicit``: confidence-weighted ALS on all pairs (top-N); ``explicit``: least squares on the
    observed ratings (rating prediction)."""
    factors: int = Field(default=64, ge=1)
    """Rank of the factorisation (Spark's ``rank``)."""
    iterations: int = Field(default=15, ge=1)
    """ALS sweeps (Spark's ``maxIter``)."""
    regularization: float | None = Field(default=None, ge=0.0)
    """λ in the sense of the `als` model (one λ for every row), converted to Spark's regParam as the
    module docstring says. None: the `als` default for implicit feedback."""
    reg_param: float | None = Field(default=None, ge=0.0)
    """Spark's own regParam (scaled by each row's count). Overrides `regularization`."""
    alpha: float = Field(default=1.25, ge=0.0)
    """Implicit only: confidence slope, c_ui = 1 + alpha·X_ui."""
    weighting: Weighting = "value"
    """Implicit only: X_ui is ``binary`` (1), ``value`` or ``log`` (value or log(1 + value), scaled to mean 1)."""
    threshold: float | None = None
    """Implicit only: count only interactions with value ≥ threshold; None counts all."""
    nonnegative: bool = False
    """Constrain the factors to be ≥ 0 (Spark's NNLS solver)."""
    blocks: int | None = Field(default=None, ge=1)
    """User and item blocks (Spark's numUserBlocks/numItemBlocks). None: Spark's default parallelism
    (the local cores, or all executor cores on a cluster), at least 2. On 2 local cores and 1M events
    that trained about 20 % faster than Spark's own default of 10 blocks."""
    checkpoint_interval: int = Field(default=10, ge=1)
    """Checkpoint the factors every n iterations (cuts the lineage; needs a checkpoint folder)."""
    seed: int = 42

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.feedback == "explicit":
            wrong = sorted({"alpha", "weighting", "threshold"} & self.model_fields_set)
            if wrong:
                raise ValueError(f"{', '.join(wrong)} apply to implicit feedback only; remove them or set "
                                 "feedback = 'implicit'")
        if self.regularization is not None and self.reg_param is not None:
            raise ValueError("give regularization (λ as in the `als` model) or reg_param (Spark's), not both")
        return self


class DataSource(StrictConfig):
    """A file or folder of interactions for Spark to read (local path, ``hdfs://…``, ``s3a://…``)."""

    path: str
    format: Literal["parquet", "csv", "tsv"] | None = None
    """None: from the extension (``.parquet``/``.pq``, ``.csv``, ``.tsv``/``.tab``, each maybe ``.gz``);
    a folder without one is read as Parquet (what Spark writes)."""
    user_col: str = "user"
    item_col: str = "item"
    value_col: str | None = None
    """Rating or count column; None: every row is one implicit event of value 1."""
    time_col: str | None = None
    """Timestamp column, used by the ``last``/``first`` duplicate policies."""
    sep: str | None = None
    """CSV separator; None: ``,`` (``\\t`` for tsv)."""
    header: bool = True
    """CSV/TSV files have a header line naming the columns (else columns are ``_c0``, ``_c1``, …)."""
    explicit: bool | None = None
    """Values are ratings. None: True when `value_col` is given (as `load_interactions`)."""
    duplicates: Duplicates | None = None
    """Repeated (user, item) pairs: ``last``/``first`` (by `time_col`), ``mean``, ``sum``, ``keep``,
    ``error``. None: ``last`` with a time column, else ``sum`` without a value column (event
    counts) and ``mean`` with one."""
    name: str | None = None
    """Data set name recorded in the model (default: the file name)."""

    def resolved_format(self) -> str:
        if self.format is not None:
            return self.format
        name = self.path.rstrip("/").lower().removesuffix(".gz")
        if name.endswith((".parquet", ".pq")):
            return "parquet"
        if name.endswith(".csv"):
            return "csv"
        if name.endswith((".tsv", ".tab")):
            return "tsv"
        if "://" not in self.path and Path(self.path).is_file():
            raise ConfigError(f"{self.path}: cannot tell the format from the extension; set format to "
                              "'parquet', 'csv' or 'tsv'")
        return "parquet"

    def resolved_duplicates(self) -> str:
        if self.duplicates is not None:
            return self.duplicates
        if self.time_col is not None:
            return "last"
        return "sum" if self.value_col is None else "mean"


class SparkALS:
    """Trains ALS on Spark; `fit` returns a fitted built-in tastemaker model (see the module docstring).

    After `fit`, `report` holds what happened: counts, the regParam used, Spark's master and version,
    and the seconds spent reading, collecting, training and pulling the factors back.
    """

    def __init__(self, config: SparkALSConfig | dict[str, Any] | None = None, *,
                 settings: SparkSettings | dict[str, Any] | None = None, **params: Any) -> None:
        data = config.model_dump(exclude_unset=True) if isinstance(config, SparkALSConfig) else dict(config or {})
        self.config = SparkALSConfig.parse(data, source="spark ALS config", **params)
        self.settings = settings if isinstance(settings, SparkSettings) else SparkSettings.parse(
            settings, source="spark settings")
        self.report: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"SparkALS({self.config.to_dict()})"

    def fit(self, source: Interactions | DataSource | DataFrame | str | Path, *,
            spark: SparkSession | None = None) -> Recommender:
        """Train on `source` and return the fitted model (`als` for implicit, `nmf` for explicit feedback).

        `source` is `Interactions`, a `DataSource` (or a path, read with `DataSource`'s defaults) or a
        Spark DataFrame with columns user, item and optionally value (see `read_interactions`).
        """
        cfg = self.config
        spark = spark or get_spark(self.settings)
        t0 = time.perf_counter()
        if isinstance(source, (str, Path)):
            source = DataSource(path=str(source))
        if isinstance(source, Interactions):
            data, indexed = source, _frame_of(spark, source)
            origin = "Interactions"
        else:
            data, indexed = read_interactions(spark, source)
            origin = source.path if isinstance(source, DataSource) else "DataFrame"
        try:
            if cfg.feedback == "explicit" and not data.explicit:
                raise DataError("explicit-feedback ALS needs ratings, but the data is implicit",
                                hint="give the rating column (value_col), or use feedback = 'implicit'")
            t_data = time.perf_counter()
            values, mean = _training_values(data, cfg)
            if values.nnz == 0:
                raise DataError(f"no interaction is left to train on (threshold {cfg.threshold})",
                                hint="lower or unset threshold")
            reg_param, regularization = _regularization(cfg, values)
            from pyspark.ml.recommendation import ALS as SparkALSEstimator

            estimator = SparkALSEstimator(
                rank=cfg.factors, maxIter=cfg.iterations, regParam=reg_param,
                implicitPrefs=cfg.feedback == "implicit", alpha=cfg.alpha, nonnegative=cfg.nonnegative, seed=cfg.seed,
                checkpointInterval=cfg.checkpoint_interval, userCol="u", itemCol="i", ratingCol="r")
            blocks = cfg.blocks or max(2, spark.sparkContext.defaultParallelism)
            estimator.setNumUserBlocks(blocks).setNumItemBlocks(blocks)
            t_fit = time.perf_counter()
            fitted = estimator.fit(_spark_values(indexed, cfg, mean))
            t_als = time.perf_counter()
            user_factors = _factors(fitted.userFactors, data.n_users, cfg.factors)
            item_factors = _factors(fitted.itemFactors, data.n_items, cfg.factors)
        finally:
            indexed.unpersist()
        t_pull = time.perf_counter()
        model = _export(cfg, data, user_factors, item_factors, reg_param, regularization)
        done = time.perf_counter()
        self.report = {
            "source": origin, "feedback": cfg.feedback, "interactions": len(data), "users": data.n_users,
            "items": data.n_items, "trained_entries": int(values.nnz), "reg_param": reg_param,
            "regularization_equivalent": regularization, "master": spark.sparkContext.master,
            "spark_version": spark.version, "default_parallelism": spark.sparkContext.defaultParallelism,
            "seconds": {"read_and_collect": t_data - t0, "prepare": t_fit - t_data, "als": t_als - t_fit,
                        "pull_factors": t_pull - t_als, "export": done - t_pull, "total": done - t0},
        }
        return model


# --- reading and indexing -------------------------------------------------------------------------

def _read(spark: SparkSession, src: DataSource) -> DataFrame:
    fmt = src.resolved_format()
    reader = spark.read
    try:
        if fmt == "parquet":
            return reader.parquet(src.path)
        sep = src.sep or ("\t" if fmt == "tsv" else ",")
        return reader.options(header=str(src.header).lower(), sep=sep, mode="FAILFAST").csv(src.path)
    except Exception as exc:  # Spark's AnalysisException (missing path, unreadable file)
        if type(exc).__name__ in ("AnalysisException", "Py4JJavaError", "IllegalArgumentException"):
            raise DataError(f"Spark cannot read it as {fmt}: {str(exc).splitlines()[0]}", path=src.path,
                            hint="check the path and the format") from None
        raise


def read_interactions(spark: SparkSession, source: DataSource | DataFrame) -> tuple[Interactions, DataFrame]:
    """Read `source` on Spark: check the columns, merge duplicates, build the vocabularies (sorted ids,
    like `Vocabulary.encode`; ids that are all plain integers become ints, as in `load_interactions`).

    Returns the rows as `Interactions` on the driver (sorted by user, then item) and a persisted
    Spark frame of (u, i, v) — user index, item index, value — for training; `unpersist()` it when
    done. A DataFrame source needs `DataSource`'s default column names (user, item, optional value).
    """
    if isinstance(source, DataSource):
        src, frame = source, _read(spark, source)
    else:
        src = DataSource(path="dataframe", value_col="value" if "value" in source.columns else None)
        frame = source
    return _index(spark, frame, src)


def _index(spark: SparkSession, frame: DataFrame, src: DataSource) -> tuple[Interactions, DataFrame]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    wanted = {"user": src.user_col, "item": src.item_col}
    for role, col in (("value", src.value_col), ("time", src.time_col)):
        if col is not None:
            wanted[role] = col
    missing = [c for c in wanted.values() if c not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}; the data has {frame.columns}", path=src.path,
                        hint="name the columns with user_col, item_col, value_col, time_col")
    cols = [F.col(wanted["user"]).alias("user"), F.col(wanted["item"]).alias("item")]
    cols.append(F.col(wanted["value"]).try_cast("double").alias("v") if "value" in wanted else F.lit(1.0).alias("v"))
    if "time" in wanted:
        cols.append(F.col(wanted["time"]).alias("t"))
    rows = frame.select(*cols)
    types = dict(rows.dtypes)
    checks = [F.count(F.lit(1)).alias("rows"),
              F.count(F.when(F.col("user").isNull(), 1)).alias("null_user"),
              F.count(F.when(F.col("item").isNull(), 1)).alias("null_item"),
              F.count(F.when(F.col("v").isNull() | F.isnan("v") | (F.abs("v") == float("inf")), 1)).alias("bad_v")]
    id_kinds = {}
    for col in ("user", "item"):
        field = rows.schema[col].dataType
        if isinstance(field, (T.IntegerType, T.LongType, T.ShortType, T.ByteType)):
            id_kinds[col] = "int"
        elif isinstance(field, T.StringType):
            id_kinds[col] = "str"
            checks.append(F.bool_and(F.col(col).rlike(_CANONICAL_INT) | F.col(col).isNull()).alias(f"{col}_int"))
        else:
            raise DataError(f"{col} ids are of type {types[col]}", path=src.path, column=wanted[col],
                            hint="store ids as integers or strings")
    stats = rows.agg(*checks).collect()[0].asDict()
    if stats["rows"] == 0:
        raise DataError("no rows", path=src.path, hint="check that the file was fully written")
    for col in ("user", "item"):
        if stats[f"null_{col}"]:
            raise DataError(f"{stats[f'null_{col}']} rows have no {col} id", path=src.path, column=wanted[col],
                            hint="fill in the ids or remove those rows")
        if id_kinds[col] == "str" and stats.get(f"{col}_int"):
            rows = rows.withColumn(col, F.col(col).cast("long"))  # plain integers become ints, as in load_interactions
    if stats["bad_v"]:
        value = F.col(wanted["value"]).try_cast("double")
        bad = (frame.filter(value.isNull() | F.isnan(value) | (F.abs(value) == float("inf")))
               .select(wanted["user"], wanted["item"], wanted["value"]).limit(1).collect()[0])
        raise DataError(f"{stats['bad_v']} rows have a missing, non-numeric or infinite value, e.g. {bad[2]!r} "
                        f"for user {bad[0]!r}, item {bad[1]!r}", path=src.path, column=wanted["value"],
                        hint="fix or remove those rows")
    rows = _merge_duplicates(rows, src).withColumn("v", F.col("v").cast("float")).persist(StorageLevel.MEMORY_AND_DISK)
    user_vocab = _vocabulary(rows, "user")
    item_vocab = _vocabulary(rows, "item")
    user_map = spark.createDataFrame(_id_table(user_vocab, "user", "u"))
    item_map = spark.createDataFrame(_id_table(item_vocab, "item", "i"))
    indexed = (rows.join(user_map, on="user").join(item_map, on="item")
               .select("u", "i", "v").persist(StorageLevel.MEMORY_AND_DISK))
    table = indexed.toArrow()
    rows.unpersist()
    u = table.column("u").to_numpy().astype(np.int32)
    i = table.column("i").to_numpy().astype(np.int32)
    v = table.column("v").to_numpy().astype(np.float32)
    del table
    order = np.lexsort((i, u))  # Spark returns rows in partition order: sort so the fingerprint is stable
    u, i, v = u[order], i[order], v[order]
    if np.any((u[1:] == u[:-1]) & (i[1:] == i[:-1])):  # duplicates = "keep": Spark trains on one entry
        summed = indexed.groupBy("u", "i").agg(F.sum("v").cast("float").alias("v"))  # per pair, as csr() sums
        indexed.unpersist()
        indexed = summed.persist(StorageLevel.MEMORY_AND_DISK)
    if len(u) < stats["rows"]:
        warnings.warn(f"{stats['rows'] - len(u)} duplicate (user, item) rows merged with policy "
                      f"{src.resolved_duplicates()!r}", DataWarning, stacklevel=3)
    explicit = src.explicit if src.explicit is not None else src.value_col is not None
    name = src.name if src.name is not None else Path(src.path.rstrip("/")).name
    data = Interactions(user_idx=u, item_idx=i, values=v, user_vocab=user_vocab, item_vocab=item_vocab,
                        explicit=explicit, rating_scale=(float(v.min()), float(v.max())) if explicit else None,
                        name=name)
    return data, indexed


def _merge_duplicates(rows: DataFrame, src: DataSource) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    policy = src.resolved_duplicates()
    if policy == "keep":
        return rows.select("user", "item", "v")
    if policy in ("mean", "sum"):
        agg = F.avg("v") if policy == "mean" else F.sum("v")
        return rows.groupBy("user", "item").agg(agg.alias("v"))
    if policy == "error":
        dup = rows.groupBy("user", "item").count().filter(F.col("count") > 1).limit(1).collect()
        if dup:
            raise DataError(f"duplicate (user, item) pair: user {dup[0]['user']!r}, item {dup[0]['item']!r} "
                            f"occurs {dup[0]['count']} times", path=src.path,
                            hint="choose duplicates = 'last', 'first', 'mean', 'sum' or 'keep'")
        return rows.select("user", "item", "v")
    if "t" not in rows.columns:
        raise ConfigError(f"duplicates = {policy!r} needs a time column (time_col) to tell which event is the "
                          f"{policy}; or choose 'mean', 'sum' or 'keep'")
    order = F.col("t").desc() if policy == "last" else F.col("t").asc()
    window = Window.partitionBy("user", "item").orderBy(order)
    return rows.withColumn("_n", F.row_number().over(window)).filter(F.col("_n") == 1).select("user", "item", "v")


def _vocabulary(rows: DataFrame, col: str) -> Vocabulary:
    ids = rows.select(col).distinct().toArrow().column(col).to_numpy(zero_copy_only=False)
    return Vocabulary(np.unique(np.asarray(ids) if ids.dtype.kind in "iu" else ids.astype(str)))


def _id_table(vocab: Vocabulary, id_col: str, index_col: str):
    import pyarrow as pa

    ids = pa.array(vocab.ids.tolist() if vocab.ids.dtype.kind == "U" else vocab.ids)
    return pa.table({id_col: ids, index_col: pa.array(np.arange(len(vocab), dtype=np.int32))})


def _frame_of(spark: SparkSession, data: Interactions) -> DataFrame:
    """`Interactions` as a persisted Spark frame of (u, i, v) indices (duplicates summed, as `csr()` does)."""
    import pyarrow as pa
    from pyspark import StorageLevel

    m = data.csr().tocoo()
    table = pa.table({"u": m.row.astype(np.int32), "i": m.col.astype(np.int32), "v": m.data.astype(np.float32)})
    return spark.createDataFrame(table).persist(StorageLevel.MEMORY_AND_DISK)


# --- training values, regularisation ------------------------------------------------------------

def _training_values(data: Interactions, cfg: SparkALSConfig):
    """The matrix Spark trains on, computed on the driver for its shape and, for implicit feedback with
    value/log weighting, the mean that `interaction_matrix` divides by: (X as CSR, that mean or 1)."""
    from tastemaker.models.weighting import interaction_matrix

    raw = data.csr()
    if cfg.feedback == "explicit":
        return raw, 1.0
    x = interaction_matrix(raw, threshold=cfg.threshold, weighting=cfg.weighting)
    if cfg.weighting == "binary" or x.nnz == 0:
        return x, 1.0
    rows, cols = x.nonzero()
    kept = np.asarray(raw[rows, cols], dtype=np.float64).ravel()
    return x, float((np.log1p(kept) if cfg.weighting == "log" else kept).mean())


def _spark_values(indexed: DataFrame, cfg: SparkALSConfig, mean: float) -> DataFrame:
    """(u, i, r): the ratings (explicit) or X_ui exactly as `weighting.interaction_matrix` computes it."""
    from pyspark.sql import functions as F

    v = F.col("v").cast("double")
    if cfg.feedback == "explicit":
        return indexed.select("u", "i", v.alias("r"))
    rows = indexed if cfg.threshold is None else indexed.filter(v >= cfg.threshold)
    if cfg.weighting == "binary":
        return rows.filter(v != 0).select("u", "i", F.lit(1.0).alias("r"))
    value = F.log1p(v) if cfg.weighting == "log" else v
    return rows.filter(v > 0).select("u", "i", (value / F.lit(mean)).alias("r"))


def _regularization(cfg: SparkALSConfig, values) -> tuple[float, float]:
    """(Spark regParam, λ in the `als` sense) following the module docstring's conversion."""
    counts = np.diff(values.indptr).astype(np.float64)
    counts = counts[counts > 0]
    activity = float(np.sqrt(np.mean(counts**2))) if len(counts) else 1.0  # root-mean-square entries per user
    if cfg.reg_param is not None:
        return cfg.reg_param, cfg.reg_param * activity
    if cfg.regularization is not None:
        return cfg.regularization / activity, cfg.regularization
    if cfg.feedback == "explicit":
        return DEFAULT_EXPLICIT_REG_PARAM, DEFAULT_EXPLICIT_REG_PARAM * activity
    lam = ALSConfig.model_fields["regularization"].default
    return lam / activity, lam


def spark_reg_param(regularization: float, data: Interactions, config: SparkALSConfig | None = None) -> float:
    """Spark regParam equivalent to the `als` model's λ on `data`: λ / rms(entries per user)."""
    cfg = SparkALSConfig.parse({**(config.model_dump(exclude_unset=True) if config else {}),
                                "regularization": regularization, "reg_param": None})
    values, _ = _training_values(data, cfg)
    return _regularization(cfg, values)[0]


# --- pulling the factors back, exporting -------------------------------------------------------

def _factors(frame: DataFrame, n: int, rank: int) -> np.ndarray:
    table = frame.toArrow()
    ids = table.column("id").to_numpy()
    flat = table.column("features").combine_chunks().flatten().to_numpy()
    out = np.zeros((n, rank), dtype=np.float32)
    out[ids] = flat.reshape(len(ids), rank)
    return out


def _export(cfg: SparkALSConfig, data: Interactions, user_factors: np.ndarray, item_factors: np.ndarray,
            reg_param: float, regularization: float) -> Recommender:
    if cfg.feedback == "implicit":
        model = ALS(ALSConfig(factors=cfg.factors, regularization=regularization, iterations=cfg.iterations,
                              alpha=cfg.alpha, weighting=cfg.weighting, threshold=cfg.threshold, seed=cfg.seed))

        def state() -> None:
            model.user_factors, model.item_factors = user_factors, item_factors
            model._prepare()

        return adopt(model, data, state)
    from tastemaker.models.baseline import fit_biases
    from tastemaker.models.nmf import NMF, NMFConfig

    model = NMF(NMFConfig(n_factors=cfg.factors, n_epochs=cfg.iterations, biased=False, reg_users=reg_param,
                          reg_items=reg_param, seed=cfg.seed))

    def rating_state() -> None:
        model.user_factors = user_factors.astype(np.float64)
        model.item_factors = item_factors.astype(np.float64)
        model.mu = 0.0
        _, model.user_bias, model.item_bias = fit_biases(data)
        model.epoch_rmse = []

    return adopt(model, data, rating_state)


def adopt(model: Recommender, data: Interactions, set_state: Callable[[], None]) -> Recommender:
    """Fit `model` on `data` with `set_state()` standing in for its own training: the base class still
    records the vocabularies, the seen matrix, counts and the data fingerprint, exactly as `fit` does."""
    model._fit = lambda _data: set_state()  # shadows the class's _fit for this one call
    try:
        model.fit(data)
    finally:
        del model._fit
    return model


__all__ = ["DEFAULT_EXPLICIT_REG_PARAM", "DataSource", "SparkALS", "SparkALSConfig", "adopt", "read_interactions",
           "spark_reg_param"]
