//! Uses both packaged crates: a producer and a consumer of one channel (in a private
//! SHM_CHANNEL_DIR set by the test), then the raw version call.
use shm_channel::{Consumer, Error, Producer};

fn main() -> Result<(), Error> {
    let name = format!("downstream-{}", std::process::id());
    let mut tx = Producer::create(&name)?;
    let mut rx = Consumer::create(&name)?;
    for i in 0..100u32 {
        tx.write(&i.to_le_bytes())?;
    }
    drop(tx); // end-of-stream
    let mut buf = Vec::new();
    for i in 0..100u32 {
        rx.read(&mut buf)?;
        assert_eq!(buf, i.to_le_bytes());
    }
    assert!(matches!(rx.read(&mut buf), Err(Error::EndOfStream)));
    // The finished stream is removed by the last close.
    drop(rx);
    // SAFETY: shm_channel_version takes no arguments and only returns a constant.
    let version = unsafe { shm_channel_sys::shm_channel_version() };
    assert_eq!(version >> 16, shm_channel_sys::SHM_CHANNEL_VERSION_MAJOR);
    println!("downstream crate: 100 messages through the packaged crates, C library {version:#x}");
    Ok(())
}
