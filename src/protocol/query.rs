//! CMPP_QUERY and CMPP_QUERY_RESP (spec §8.4.4): the SP's traffic statistics. Same in 2.0 and 3.0.

use bytes::{BufMut, BytesMut};

use super::body::Body;
use super::wire::{Reader, put_octet_string};
use super::{CommandId, DecodeError, EncodeError, Version};

const TIME_LEN: usize = 8;
const QUERY_CODE_LEN: usize = 10;
const RESERVE_LEN: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    /// YYYYMMDD.
    pub time: String,
    /// 0 totals, 1 by Service_Id.
    pub query_type: u8,
    /// The Service_Id when query_type = 1.
    pub query_code: String,
    pub reserve: String,
}

impl Body for Query {
    const COMMAND: CommandId = CommandId::Query;

    fn read(_: Version, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Query {
            time: r.octet_string("Time", TIME_LEN)?,
            query_type: r.u8("Query_Type")?,
            query_code: r.octet_string("Query_Code", QUERY_CODE_LEN)?,
            reserve: r.octet_string("Reserve", RESERVE_LEN)?,
        })
    }

    fn write(&self, _: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
        put_octet_string(buf, "Time", &self.time, TIME_LEN)?;
        buf.put_u8(self.query_type);
        put_octet_string(buf, "Query_Code", &self.query_code, QUERY_CODE_LEN)?;
        put_octet_string(buf, "Reserve", &self.reserve, RESERVE_LEN)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryResp {
    pub time: String,
    pub query_type: u8,
    pub query_code: String,
    /// MT messages received from the SP.
    pub mt_tl_msg: u32,
    /// MT users received from the SP.
    pub mt_tl_usr: u32,
    /// MT forwarded successfully.
    pub mt_scs: u32,
    /// MT waiting to be forwarded.
    pub mt_wt: u32,
    /// MT that failed.
    pub mt_fl: u32,
    /// MO delivered to the SP.
    pub mo_scs: u32,
    /// MO waiting.
    pub mo_wt: u32,
    /// MO that failed.
    pub mo_fl: u32,
}

impl QueryResp {
    /// The eight counters under their spec names, in wire order.
    pub fn counters(&self) -> [(&'static str, u32); 8] {
        [
            ("MT_TLMsg", self.mt_tl_msg),
            ("MT_Tlusr", self.mt_tl_usr),
            ("MT_Scs", self.mt_scs),
            ("MT_WT", self.mt_wt),
            ("MT_FL", self.mt_fl),
            ("MO_Scs", self.mo_scs),
            ("MO_WT", self.mo_wt),
            ("MO_FL", self.mo_fl),
        ]
    }
}

impl Body for QueryResp {
    const COMMAND: CommandId = CommandId::QueryResp;

    fn read(_: Version, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(QueryResp {
            time: r.octet_string("Time", TIME_LEN)?,
            query_type: r.u8("Query_Type")?,
            query_code: r.octet_string("Query_Code", QUERY_CODE_LEN)?,
            mt_tl_msg: r.u32("MT_TLMsg")?,
            mt_tl_usr: r.u32("MT_Tlusr")?,
            mt_scs: r.u32("MT_Scs")?,
            mt_wt: r.u32("MT_WT")?,
            mt_fl: r.u32("MT_FL")?,
            mo_scs: r.u32("MO_Scs")?,
            mo_wt: r.u32("MO_WT")?,
            mo_fl: r.u32("MO_FL")?,
        })
    }

    fn write(&self, _: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
        put_octet_string(buf, "Time", &self.time, TIME_LEN)?;
        buf.put_u8(self.query_type);
        put_octet_string(buf, "Query_Code", &self.query_code, QUERY_CODE_LEN)?;
        for (_, value) in self.counters() {
            buf.put_u32(value);
        }
        Ok(())
    }
}
