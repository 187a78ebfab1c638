package com.recipeml.client;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.net.URI;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * Drives every method of {@link RecipeMlClient} against a live server and prints what it saw as
 * one JSON object; {@code tests/clients/test_java_client.py} compiles and runs it, then checks it.
 *
 * <p>Arguments: base URL, a known user id, a known recipe id, an unknown user id[, API key].
 */
public final class ClientCheck {
    private ClientCheck() {}

    public static void main(String[] args) throws Exception {
        URI baseUrl = URI.create(args[0]);
        long user = Long.parseLong(args[1]);
        long recipe = Long.parseLong(args[2]);
        long unknown = Long.parseLong(args[3]);
        RecipeMlClient client = new RecipeMlClient(baseUrl, args.length > 4 ? args[4] : null);
        Map<String, Object> seen = new LinkedHashMap<>();

        seen.put("health", client.health().status());
        Models.RecipeRequest request = new Models.RecipeRequest(user, 5, null, null, 0.0, null);
        Models.RecipeRecommendations before = client.recommendRecipes(request);
        seen.put("before", ids(before.recommendations()));
        seen.put("model_used", before.modelUsed());
        seen.put("model_version", before.modelVersion());
        seen.put("recommendation_id", before.recommendationId());
        seen.put("variant", before.variant());

        try {
            client.recommendRecipes(Models.RecipeRequest.of(unknown, 3));
            seen.put("unknown", "no error");
        } catch (RecipeMlException e) {
            seen.put("unknown", Map.of(
                    "status", e.status(),
                    "unknown_user", e.isUnknownUser(),
                    "user_id", e.problem().userId(),
                    "cold_start", e.problem().coldStart()));
        }
        try {
            client.recommendRecipes(Models.RecipeRequest.of(user, 0));
            seen.put("invalid", "no error");
        } catch (RecipeMlException e) {
            seen.put("invalid", Map.of("status", e.status(), "field", e.problem().errors().get(0).field()));
        }

        long cooked = before.recommendations().get(0).recipeId();
        Models.InteractionAccepted accepted = client.postInteraction(new Models.InteractionEvent(
                user, cooked, "cook", null, Instant.now().toString(), "java-" + UUID.randomUUID()));
        seen.put("accepted", accepted.applied());
        Models.RecipeRecommendations after = client.recommendRecipes(request);
        seen.put("cooked", cooked);
        seen.put("after", ids(after.recommendations()));
        seen.put("after_cached", after.cached());

        Models.BatchResponse batch = client.recommendBatch(Models.BatchRequest.of(List.of(user, unknown), 3));
        List<String> kinds = batch.results().stream()
                .map(entry -> entry instanceof Models.BatchRecipes ok
                        ? "recipes:" + ok.recommendations().size()
                        : "failure:" + ((Models.BatchFailure) entry).problem().status())
                .toList();
        seen.put("batch", kinds);

        seen.put("cold_start", client.coldStart(Models.ColdStartRequest.of(3, List.of(recipe))).recommendations().size());
        seen.put("similar_users", client.similarUsers(new Models.SimilarUsersRequest(user, 3)).similarUsers().size());
        Models.SimilarRecipes similar = client.similarRecipes(Models.SimilarRecipesRequest.of(recipe, 3));
        seen.put("similar_recipes", ids(similar.similarRecipes()));

        System.out.println(new ObjectMapper().writeValueAsString(seen));
    }

    private static List<Long> ids(List<Models.Recommendation> recommendations) {
        return recommendations.stream().map(Models.Recommendation::recipeId).toList();
    }
}
