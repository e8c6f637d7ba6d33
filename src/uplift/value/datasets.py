"""Real transaction data shipped with the project (``data/`` at the repository root).

CDNOW (Fader & Hardie): 23,570 customers who first bought in Q1 1997, all their purchases to
1998-06-30. It is the benchmark of the BTYD literature, so a CLV model that cannot reproduce the
published CDNOW estimates is wrong. Provenance and checksums: ``data/cdnow/SOURCE.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from uplift.data.datasets import shipped_path
from uplift.value.transactions import TransactionColumns

#: Fader, Hardie & Lee (2005) split: 39 calibration weeks, 39 holdout weeks, time in weeks.
CDNOW_CALIBRATION_END = "1997-09-30"
CDNOW_HOLDOUT_END = "1998-06-30"
#: BG/NBD maximum-likelihood estimates on the 2,357-customer sample (FHL 2005, Table/Sec. 4;
#: LL = -9582.4), and Gamma-Gamma estimates (Fader & Hardie 2013 note, LL = -4055.9).
CDNOW_PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CDNOW_PUBLISHED_BGNBD_LL = -9582.4
CDNOW_PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}
CDNOW_COLUMNS = TransactionColumns(customer_id="customer_id", date="date", amount="amount")


@dataclass(frozen=True)
class CdnowData:
    """CDNOW transactions (one row per purchase line) and the ids of the published 1/10 sample."""

    transactions: pd.DataFrame
    sample_ids: pd.Index

    def sample(self) -> pd.DataFrame:
        """Transactions of the 2,357-customer sample the published estimates were fit on."""
        return self.transactions[self.transactions["customer_id"].isin(self.sample_ids)]


def load_cdnow() -> CdnowData:
    """CDNOW master transactions: ``customer_id`` (int), ``date`` (Timestamp), ``n_cds``, ``amount`` ($).

    Also returns the master ids of the 2,357-customer sample (``CDNOW_sample.txt``) on which
    Fader, Hardie & Lee (2005) report their estimates.
    """
    master = pd.read_csv(shipped_path("cdnow/CDNOW_master.txt.gz"), sep=r"\s+", dtype={"date": str})
    master = master.rename(columns={"number_of_cds": "n_cds", "dollar_value": "amount"})
    master["date"] = pd.to_datetime(master["date"], format="%Y%m%d")
    sample = pd.read_csv(
        shipped_path("cdnow/CDNOW_sample.txt.gz"),
        sep=r"\s+",
        header=None,
        names=["customer_id", "sample_id", "date", "n_cds", "amount"],
    )
    ids = pd.Index(sorted(sample["customer_id"].unique()), name="customer_id")
    return CdnowData(transactions=master, sample_ids=ids)


def load_cdnow_reference_summary() -> pd.DataFrame:
    """The authors' own RFM summary of the sample (``x, t_x, T, zbar``; weeks), indexed by sample id.

    Used to check that :func:`uplift.value.transactions.rfm_summary` follows their conventions.
    """
    ref = pd.read_csv(shipped_path("cdnow/cdnow_customers_summary_with_transactions.csv.gz"))
    return ref.set_index("ID")


def cdnow_sample_id_map() -> pd.Series:
    """Sample id (1..2357, as in the reference summary) -> master customer id."""
    sample = pd.read_csv(
        shipped_path("cdnow/CDNOW_sample.txt.gz"),
        sep=r"\s+",
        header=None,
        names=["customer_id", "sample_id", "date", "n_cds", "amount"],
    )
    return sample.drop_duplicates("sample_id").set_index("sample_id")["customer_id"].sort_index()


#: Online Retail (UCI, CC BY 4.0): two years of a UK gift wholesaler's invoices, 2009-12-01 ..
#: 2011-12-09. Provenance, cleaning rules and checksum: ``data/online_retail/SOURCE.md``.
ONLINE_RETAIL_FILE = "online_retail/online_retail_invoices.csv.gz"
ONLINE_RETAIL_CALIBRATION_END = "2011-03-31"
ONLINE_RETAIL_HOLDOUT_END = "2011-12-09"
ONLINE_RETAIL_COLUMNS = TransactionColumns(
    customer_id="customer_id", date="invoice_date", amount="amount"
)


def load_online_retail() -> pd.DataFrame:
    """Online Retail invoices: ``invoice`` (str), ``customer_id`` (int), ``invoice_date``
    (Timestamp, minute resolution), ``amount`` (GBP, sum of quantity x unit price).

    One row per invoice of an identified customer; cancellations, returns, bad-debt adjustments
    and non-merchandise lines (postage, fees) were removed when the shipped file was derived, so
    every amount is a purchase > 0 (see ``data/online_retail/SOURCE.md``).
    """
    frame = pd.read_csv(
        shipped_path(ONLINE_RETAIL_FILE),
        dtype={"invoice": str, "customer_id": "int64", "amount": float},
    )
    frame["invoice_date"] = pd.to_datetime(frame["invoice_date"], format="%Y-%m-%d %H:%M")
    return frame
