import shm_channel.pubsub as shm_pub_sub
class ManagedPublisher:
    def __init__(self, topic, default_value, buffer_num=3):
        self.pub = shm_pub_sub.Publisher(topic, default_value, buffer_num)
    def __enter__(self):
        return self.pub
    def __exit__(self, exc_type, exc_val, exc_tb):
        # Cleanup if needed
        pass
# Usage
with ManagedPublisher("my_topic", 0.0) as pub:
    pub.publish(42.0)
