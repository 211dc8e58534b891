# Test publisher/subscriber independently
import shm_channel.pubsub as shm_pub_sub
# Test publisher only
pub = shm_pub_sub.Publisher("test_topic", 0, 3)
for i in range(10):
    pub.publish(i)
    print(f"Published: {i}")
