DELETE FROM consumer_accuracies WHERE consumer_version = $consumer_version;
