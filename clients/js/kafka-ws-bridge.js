// Placeholder: the kafka-ws-bridge JS client is being written.
export {};
